"""Test helpers for the cgroup v2 device filter (ocirun/cgroups/ebpf.py): `emulate` runs a
compiled program on one access as the kernel would, and `attached` asks the kernel which
device programs a cgroup has (BPF_PROG_QUERY through ctypes), so the product carries neither.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

from ocirun.cgroups.ebpf import (
    _TYPES,
    AND64_K,
    EXIT,
    JA,
    JEQ_K,
    JNE_K,
    JSET_K,
    LDXW,
    MOV64_K,
    MOV64_X,
    R0,
    R1,
    RSH64_K,
    Insn,
    access_bits,
)


def emulate(prog: list[Insn], dev_type: str, major: int, minor: int, access: str) -> bool:
    """Run `prog` as the kernel would for one access ("c", 1, 3, "rw"): True = allowed.
    Knows only the instructions compile_rules emits."""
    mem = struct.pack("=III", access_bits(access) << 16 | _TYPES[dev_type], major, minor)
    reg = [0] * 11
    mask = 2**64 - 1
    pc = steps = 0
    while True:
        steps += 1
        if steps > 100000 or not 0 <= pc < len(prog):
            raise AssertionError(f"program ran off at pc={pc}")
        code, dst, src, off, imm = prog[pc]
        pc += 1
        if code == LDXW:
            assert src == R1 and off in (0, 4, 8)
            reg[dst] = struct.unpack_from("=I", mem, off)[0]
        elif code == MOV64_X:
            reg[dst] = reg[src]
        elif code == MOV64_K:
            reg[dst] = imm & mask
        elif code == AND64_K:
            reg[dst] &= imm & mask
        elif code == RSH64_K:
            reg[dst] >>= imm
        elif code == JA:
            pc += off
        elif code == JNE_K:
            pc += off if reg[dst] != imm & mask else 0
        elif code == JEQ_K:
            pc += off if reg[dst] == imm & mask else 0
        elif code == JSET_K:
            pc += off if reg[dst] & (imm & mask) else 0
        elif code == EXIT:
            return reg[R0] == 1
        else:
            raise AssertionError(f"unknown opcode {code:#x}")


_SYS_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280}
_BPF_PROG_QUERY = 16
_BPF_CGROUP_DEVICE = 6


def attached(cgroup_dir: str, max_ids: int = 64) -> list[int]:
    """Ids of the device programs attached directly to `cgroup_dir`."""
    libc = ctypes.CDLL(None, use_errno=True)
    ids = (ctypes.c_uint32 * max_ids)()
    attr = ctypes.create_string_buffer(128)  # union bpf_attr, the query member
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # target_fd, attach_type, query_flags, attach_flags, prog_ids, prog_cnt
        struct.pack_into("=IIIIQI", attr, 0, fd, _BPF_CGROUP_DEVICE, 0, 0,
                         ctypes.addressof(ids), max_ids)  # fmt: skip
        r = libc.syscall(_SYS_BPF[platform.machine()], _BPF_PROG_QUERY, attr, len(attr))
        if r < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), cgroup_dir)
    finally:
        os.close(fd)
    (count,) = struct.unpack_from("=I", attr, 24)
    return list(ids[: min(count, max_ids)])
