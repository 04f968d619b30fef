"""The -ENOSYS stub seccomp.compile puts before libseccomp's program (as runc does).

A syscall newer than every syscall the profile names (for the calling architecture) gets
ENOSYS instead of the default action, so libc falls back (clone3 -> clone, faccessat2 ->
faccessat...). The stub runs first and jumps to libseccomp's program (which reloads what it
needs) for everything else. All jumps are forward and land inside the stub or on the first
instruction after it, so the stub stays well under the 255-instruction reach of jt/jf.
"""

from __future__ import annotations

import struct
from errno import ENOSYS

from .seccomp import ACT_ERRNO, _native, _resolve

_AUDIT_ARCH_X86_64 = 0xC000003E
_SCMP_ARCH_X32 = 0x4000003E  # libseccomp's own token: the kernel reports x32 as x86_64
_X32_SYSCALL_BIT = 0x40000000
_AUDIT_ARCH_S390 = 0x00000016
_AUDIT_ARCH_S390X = 0x80000016
_LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGT = 0x25  # BPF_JMP | BPF_JGT | BPF_K
_JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
_OFF_NR, _OFF_ARCH = 0, 4  # struct seccomp_data


def enosys_stub(arches: list[int], names: list[str]) -> bytes:
    if not names:
        return b""
    _, lib = _native()
    native = lib.ocirun_seccomp_arch_native()
    tokens = [native] + [a for a in arches if a != native]
    # audit arch -> {"" or "x32": largest syscall number the profile names}
    last: dict[int, dict[str, int]] = {}
    for token in tokens:
        known = [nr for nr in _resolve(token, names) if nr >= 0]
        if not known:
            continue  # nothing to compare with: leave this arch to the default action
        if token == _SCMP_ARCH_X32:
            last.setdefault(_AUDIT_ARCH_X86_64, {})["x32"] = max(known)
        else:
            last.setdefault(token, {})[""] = max(known)
    if not last:
        return b""

    prog: list[list] = [[_LD_ABS, 0, 0, _OFF_ARCH]]
    for audit in last:
        prog.append([_JEQ, ("arch", audit), 0, audit])
    prog.append([_JEQ, "main", "main", 0])  # other arches: straight to libseccomp's program
    labels: dict = {}
    for audit, maxes in last.items():
        labels[("arch", audit)] = len(prog)
        prog.append([_LD_ABS, 0, 0, _OFF_NR])
        if audit in (_AUDIT_ARCH_S390, _AUDIT_ARCH_S390X):
            # Syscall 0 is how s390 multiplexes syscalls the kernel does not know.
            prog.append([_JEQ, "enosys", 0, 0])
        if audit == _AUDIT_ARCH_X86_64:
            m64, m32 = maxes.get(""), maxes.get("x32")
            if m64 is not None and m32 is not None:
                prog.append([_JSET, 1, 0, _X32_SYSCALL_BIT])
                prog.append([_JGT, "enosys", "main", m64])
                prog.append([_JGT, "enosys", "main", m32])
            elif m64 is not None:  # x32 calls: libseccomp's bad-arch handling
                prog.append([_JSET, "main", 0, _X32_SYSCALL_BIT])
                prog.append([_JGT, "enosys", "main", m64])
            else:
                prog.append([_JSET, 0, "main", _X32_SYSCALL_BIT])
                prog.append([_JGT, "enosys", "main", m32])
        else:
            prog.append([_JGT, "enosys", "main", maxes[""]])
    labels["enosys"] = len(prog)
    prog.append([_RET, 0, 0, ACT_ERRNO | ENOSYS])
    labels["main"] = len(prog)

    out = bytearray()
    for i, (code, jt, jf, k) in enumerate(prog):
        jt = labels[jt] - i - 1 if not isinstance(jt, int) else jt
        jf = labels[jf] - i - 1 if not isinstance(jf, int) else jf
        if not (0 <= jt <= 255 and 0 <= jf <= 255):
            raise AssertionError(f"seccomp stub: jump out of reach at {i}")
        out += struct.pack("=HBBI", code, jt, jf, k)
    return bytes(out)
