"""cgroup v2 device control: the rule list (devices.device_rules) compiled to an eBPF program
of type BPF_PROG_TYPE_CGROUP_DEVICE, loaded and attached to the container's cgroup by the C
shim (csrc/bpf.c).

Compilation is pure Python (`compile_rules`), so the semantics are testable without root or
a kernel that loads it (tests/bpftestlib.py runs a compiled program on one access).

The kernel calls the program with a `struct bpf_cgroup_dev_ctx`:
    u32 access_type   low 16 bits: BPF_DEVCG_DEV_BLOCK (1) / _CHAR (2)
                      high 16 bits: BPF_DEVCG_ACC_MKNOD (1) | _READ (2) | _WRITE (4)
    u32 major, minor
and allows the access when it returns 1.

Semantics (as the v1 list reads): the last rule that matches the device decides each access
bit. The program walks the rules from last to first, with r3 holding the bits of the request
nothing has decided yet:
    allow rule matching the device:  r3 &= ~rule_bits; nothing left -> return 1
    deny rule matching the device:   r3 & rule_bits -> return 0  (a bit's last word is "no")
    end of the list:                 return 0
so a read+write open needs both bits allowed, each by its own last matching rule.
"""

from __future__ import annotations

import os
import struct
import sys

from .common import CgroupError

# struct bpf_cgroup_dev_ctx constants (linux/bpf.h)
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}

# opcodes (linux/bpf_common.h, linux/bpf.h); the only ones the compiler emits
LDXW = 0x61  # BPF_LDX | BPF_MEM | BPF_W:   dst = *(u32 *)(src + off)
MOV64_X = 0xBF  # BPF_ALU64 | BPF_MOV | BPF_X: dst = src
MOV64_K = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K: dst = imm
AND64_K = 0x57  # BPF_ALU64 | BPF_AND | BPF_K: dst &= imm (sign-extended)
RSH64_K = 0x77  # BPF_ALU64 | BPF_RSH | BPF_K: dst >>= imm
JA = 0x05  # BPF_JMP | BPF_JA:            pc += off
JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K:   if dst != imm: pc += off
JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K:   if dst == imm: pc += off
JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K:  if dst & imm: pc += off
EXIT = 0x95  # BPF_JMP | BPF_EXIT:          return r0

R0, R1, R2, R3, R4, R5 = range(6)
_INSN = struct.Struct("=BBhi")  # struct bpf_insn: code, dst_reg:4 + src_reg:4, off, imm


class Insn(tuple):
    """(code, dst, src, off, imm) of one instruction."""

    __slots__ = ()

    def __new__(cls, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0):
        return tuple.__new__(cls, (code, dst, src, off, imm))

    def pack(self) -> bytes:
        code, dst, src, off, imm = self
        # The register byte is a pair of bitfields: dst in the low nibble on little-endian
        # hosts, in the high one on big-endian hosts.
        regs = (dst | src << 4) if sys.byteorder == "little" else (dst << 4 | src)
        return _INSN.pack(code, regs, off, imm)


def access_bits(access: str) -> int:
    bits = 0
    for ch in access:
        if ch not in _ACCESS_BITS:
            raise CgroupError(f'invalid cgroup device access "{access}"')
        bits |= _ACCESS_BITS[ch]
    return bits


def _relevant(rules: list[dict]) -> list[dict]:
    """Drop rules nothing can reach: everything before the last rule that matches every
    device with every access (it alone decides for them). Rules with no access bits match
    nothing."""
    start = 0
    for i, r in enumerate(rules):
        if (
            (r.get("type") or "a") == "a"
            and r["major"] < 0
            and r["minor"] < 0
            and access_bits(r["access"]) == 7
        ):
            start = i
    return [r for r in rules[start:] if access_bits(r["access"])]


def compile_rules(rules: list[dict]) -> list[Insn]:
    """The program for `rules` ([{"allow", "type", "major", "minor", "access"}], in order;
    major/minor -1 = any; type "a" = block and char)."""
    prog = [
        Insn(LDXW, R2, R1, 0),  # r2 = ctx->access_type
        Insn(MOV64_X, R3, R2),  # r3 = requested access bits (high half)
        Insn(RSH64_K, R3, imm=16),
        Insn(AND64_K, R2, imm=0xFFFF),  # r2 = device type (low half)
        Insn(LDXW, R4, R1, 4),  # r4 = ctx->major
        Insn(LDXW, R5, R1, 8),  # r5 = ctx->minor
    ]
    final = False
    for r in reversed(_relevant(rules)):
        t = r.get("type") or "a"
        if t not in ("a", "b", "c"):
            raise CgroupError(f'invalid cgroup device type "{t}"')
        bits = access_bits(r["access"])
        # the body: after a match on the device
        if bits == 7:
            body = [Insn(MOV64_K, R0, imm=1 if r["allow"] else 0), Insn(EXIT)]
        elif r["allow"]:
            body = [
                Insn(AND64_K, R3, imm=~bits),  # these bits are allowed
                Insn(JNE_K, R3, off=2, imm=0),  # some left: go on with earlier rules
                Insn(MOV64_K, R0, imm=1),
                Insn(EXIT),
            ]
        else:
            body = [
                Insn(JSET_K, R3, off=1, imm=bits),  # a requested bit is denied here
                Insn(JA, off=2),
                Insn(MOV64_K, R0, imm=0),
                Insn(EXIT),
            ]
        # the tests, each jumping past the body when it fails
        tests = []
        if t != "a":
            tests.append((R2, _TYPES[t]))
        if r["major"] >= 0:
            tests.append((R4, int(r["major"])))
        if r["minor"] >= 0:
            tests.append((R5, int(r["minor"])))
        n = len(tests)
        for i, (reg, value) in enumerate(tests):
            if not 0 <= value <= 0x7FFFFFFF:
                raise CgroupError(f"invalid device number {value}")
            prog.append(Insn(JNE_K, reg, off=(n - 1 - i) + len(body), imm=value))
        prog.extend(body)
        final = not tests and bits == 7  # decides every access: nothing after it runs
    if not final:  # (the verifier refuses unreachable instructions)
        prog += [Insn(MOV64_K, R0, imm=0), Insn(EXIT)]
    if len(prog) > 4096:
        raise CgroupError(
            f"too many device rules: the eBPF program has {len(prog)} instructions (4096 at most)"
        )
    return prog


def assemble(prog: list[Insn]) -> bytes:
    return b"".join(i.pack() for i in prog)


# ---------------------------------------------------------------- the kernel side


def attach(cgroup_dir: str, rules: list[dict]) -> int:
    """Load the program for `rules` and attach it to `cgroup_dir` (BPF_CGROUP_DEVICE,
    BPF_F_ALLOW_MULTI); device programs attached there before (an update's predecessor) are
    detached once the new one is in. Returns how many were replaced."""
    from .._shim import ffi, lib  # the compiled shim: loaded only to attach

    code = assemble(compile_rules(rules))
    fd = _open_dir(cgroup_dir)
    try:
        log = ffi.new("char[]", 65536)
        rc = lib.ocirun_bpf_device_filter(fd, code, len(code) // 8, log, len(log))
    finally:
        os.close(fd)
    if rc < 0:
        why = os.strerror(-rc).lower()
        text = ffi.string(log).decode(errors="replace").strip()
        msg = f"failed to set the device filter on {cgroup_dir}: {why}"
        if text:
            msg += f" (verifier: {text.splitlines()[-1]})"
        raise CgroupError(msg, cgroup_dir, None, -rc)
    return rc


def _open_dir(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(
            f"open {path}: {os.strerror(e.errno or 0).lower()}", path, None, e.errno or 0
        ) from None
