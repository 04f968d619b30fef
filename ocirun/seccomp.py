"""linux.seccomp -> a classic BPF program, compiled in the runtime (parent) process.

libseccomp (through csrc/seccomp.c) builds the filter and exports it; this module parses and
checks the profile, flattens it into rules and prefixes runc's -ENOSYS stub (seccomp_cache.py
keeps the compiled filters on disk). The child only hands `Filter.bpf` to seccomp(2), as the
last step before execve:

    seccomp(SECCOMP_SET_MODE_FILTER, filt.flags, &(struct sock_fprog){len(bpf) // 8, bpf})

(no_new_privs or CAP_SYS_ADMIN in the child's user namespace is needed for that call). When
`filt.notify` is true, `filt.flags` includes SECCOMP_FILTER_FLAG_NEW_LISTENER and the call
returns the listener fd, which the child must hand to the parent before it execs (the fd is
O_CLOEXEC). No syscall the child makes after the load may be notified, or nobody would answer:
hence validate.NOTIFY_FORBIDDEN. The parent then passes it on to linux.seccomp.listenerPath
(send_listener).

Nothing heavy at import time: libseccomp is reached lazily.
"""

from __future__ import annotations

import os
from errno import ENOSYS, EPERM

from .errors import ConfigError, OcirunError
from .plan_security import Filter  # noqa: F401 (seccomp.Filter: what compile() returns)

# --- kernel / libseccomp ABI constants -----------------------------------------------------

# Actions (seccomp.h SCMP_ACT_* == linux/seccomp.h SECCOMP_RET_*). The low 16 bits carry the
# errno of ERRNO and the value of TRACE.
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_NOTIFY": ACT_NOTIFY,
}
_WITH_DATA = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")  # the actions errnoRet applies to

# Argument comparisons (enum scmp_compare; csrc/seccomp.c checks them at compile time).
OPS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# seccomp(2) SECCOMP_SET_MODE_FILTER flags.
FLAG_TSYNC = 1
FLAG_LOG = 2
FLAG_SPEC_ALLOW = 4
FLAG_NEW_LISTENER = 8
FLAG_TSYNC_ESRCH = 16
FLAG_WAIT_KILLABLE_RECV = 32

FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": FLAG_WAIT_KILLABLE_RECV,
}

BPF_MAXINSNS = 4096
_OPTIMIZE_ABOVE = 32  # more rules than this: libseccomp's binary tree (as runc does)


# --- parsing ------------------------------------------------------------------------------

_BASE = "/linux/seccomp"


class _Rule:
    """One seccomp_rule_add_array() call; conds are (arg index, op, value, valueTwo), ANDed."""

    __slots__ = ("where", "name", "nr", "action", "conds")

    def __init__(self, where: str, name: str, nr: int, action: int, conds: list[tuple]):
        self.where, self.name, self.nr, self.action, self.conds = where, name, nr, action, conds


def _action(name: str, errno_ret: int | None) -> int:
    """The action's SECCOMP_RET_* value; ERRNO and TRACE carry errnoRet (default EPERM)."""
    act = ACTIONS[name]
    if name not in _WITH_DATA:
        return act
    return act | (EPERM if errno_ret is None else errno_ret)


def _arch_name(name: str) -> str:
    """SCMP_ARCH_X86_64 -> x86_64, the spelling seccomp_arch_resolve_name() takes."""
    return name[len("SCMP_ARCH_") :].lower() if name.startswith("SCMP_ARCH_") else ""


def _parse(sec: dict) -> tuple:
    """Flatten a validated profile (validate.py checks it, with the config): (default
    action, (arch tokens, their JSON paths), flags, notify, every syscall name, rules,
    warnings, notes). What only libseccomp knows is checked here: an architecture it can't
    resolve is a ConfigError, a syscall name it doesn't know a note (skipped)."""
    _, lib = _native()
    warnings: list[str] = []
    notes: list[str] = []
    default = _action(sec["defaultAction"], sec.get("defaultErrnoRet"))

    arches: list[int] = []
    arch_where: list[str] = []
    problems: list[str] = []
    for i, name in enumerate(sec.get("architectures") or []):
        token = (
            lib.ocirun_seccomp_arch_resolve(_arch_name(name).encode()) if _arch_name(name) else 0
        )
        if not token:
            problems.append(f"{_BASE}/architectures/{i}: unknown architecture {name!r}")
        elif token not in arches:
            arches.append(token)
            arch_where.append(f"{_BASE}/architectures/{i}: {name}")
    if problems:
        raise ConfigError(problems)

    flags = 0
    for name in sec.get("flags") or []:
        flags |= FLAGS[name]

    # (JSON path, action, conditions, names) per entry; names are resolved in one batch below.
    entries: list[tuple[str, int, list, list[str]]] = []
    all_names: list[str] = []
    notify = False
    for i, call in enumerate(sec.get("syscalls") or []):
        act = _action(call["action"], call.get("errnoRet"))
        notify = notify or act == ACT_NOTIFY
        conds = [
            (arg["index"], OPS[arg["op"]], arg.get("value", 0), arg.get("valueTwo", 0))
            for arg in call.get("args") or []
        ]
        entries.append((f"{_BASE}/syscalls/{i}", act, conds, call["names"]))
        all_names.extend(call["names"])

    if notify and lib.ocirun_seccomp_api() < 6:
        raise OcirunError(
            "seccomp notify unsupported: libseccomp API level "
            f"{lib.ocirun_seccomp_api()}, want at least 6 "
            "(libseccomp >= 2.5.0 and Linux >= 5.7)"
        )
    if flags & FLAG_WAIT_KILLABLE_RECV and not notify:
        # The kernel refuses it without a listener (EINVAL); it has no meaning there anyway.
        flags &= ~FLAG_WAIT_KILLABLE_RECV
        warnings.append(
            f"{_BASE}/flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored: "
            "no rule uses SCMP_ACT_NOTIFY"
        )
    if notify:
        flags |= FLAG_NEW_LISTENER
        if flags & FLAG_TSYNC:
            flags |= FLAG_TSYNC_ESRCH  # TSYNC with NEW_LISTENER is EINVAL without it

    numbers = _resolve(0, all_names) if all_names else []
    rules: list[_Rule] = []
    pos = 0
    for where, act, conds, names in entries:
        nrs = numbers[pos : pos + len(names)]
        pos += len(names)
        for j, (name, nr) in enumerate(zip(names, nrs)):
            if nr == -1:
                notes.append(f"{where}/names/{j}: unknown syscall {name!r} skipped")
                continue
            if act == default:
                continue  # redundant, and libseccomp refuses it
            indexes = [c[0] for c in conds]
            if len(set(indexes)) == len(indexes):
                rules.append(_Rule(where, name, nr, act, conds))
            else:
                # Several conditions on one argument cannot be ANDed by libseccomp: like runc,
                # every condition becomes a rule of its own (so they are ORed).
                for c in conds:
                    rules.append(_Rule(where, name, nr, act, [c]))
    return default, (arches, arch_where), flags, notify, all_names, rules, warnings, notes


def libseccomp_version() -> str:
    """e.g. "2.5.4" (for `ocirun features`' io.github.seccomp.libseccomp.version)."""
    ffi, lib = _native()
    v = ffi.new("unsigned int[3]")
    lib.ocirun_seccomp_version(v)
    return f"{v[0]}.{v[1]}.{v[2]}"


def _native():
    from ._shim import ffi, lib

    return ffi, lib


def _resolve(arch: int, names: list[str]) -> list[int]:
    ffi, lib = _native()
    blob = ffi.new("char[]", b"\0".join(n.encode() for n in names) + b"\0")
    out = ffi.new("int[]", len(names))
    lib.ocirun_seccomp_resolve_names(arch, blob, len(names), out)
    return list(out)


# --- compiling ----------------------------------------------------------------------------


def compile(seccomp: dict) -> Filter:  # noqa: A001 (the brief's name)
    """Compile linux.seccomp, validated with its config (validate.py). ConfigError (naming
    the JSON path) for what only libseccomp can judge: architectures, the filter's size."""
    default, (arches, arch_where), flags, notify, names, rules, warnings, notes = _parse(seccomp)
    prog = _export(default, arches, arch_where, rules)
    stub = b""
    if not _permissive(default):
        from .seccomp_stub import enosys_stub

        stub = enosys_stub(arches, names)
    if len(prog) // 8 > BPF_MAXINSNS:
        raise ConfigError(
            [
                f"{_BASE}: the filter has {len(prog) // 8} BPF instructions, more "
                f"than the kernel's limit of {BPF_MAXINSNS}"
            ]
        )
    if stub and (len(stub) + len(prog)) // 8 > BPF_MAXINSNS:
        warnings.append(
            f"{_BASE}: no -ENOSYS stub for newer syscalls: the filter would exceed "
            f"{BPF_MAXINSNS} instructions"
        )
        stub = b""
    return Filter(stub + prog, flags, notify, warnings, notes)


def _permissive(default: int) -> bool:
    """No stub when unknown syscalls are let through anyway (runc: allow, log, trace) or
    already get ENOSYS."""
    kind = default & 0xFFFF0000
    return kind in (ACT_ALLOW, ACT_LOG, ACT_TRACE) or default == ACT_ERRNO | ENOSYS


def _export(default: int, arches: list[int], arch_where: list[str], rules: list[_Rule]) -> bytes:
    ffi, lib = _native()
    n_conds = sum(len(r.conds) for r in rules)
    c_rules = ffi.new("struct ocirun_sc_rule[]", max(len(rules), 1))
    c_conds = ffi.new("struct ocirun_sc_cond[]", max(n_conds, 1))
    c_arches = ffi.new("unsigned int[]", arches or [0])
    k = 0
    for i, r in enumerate(rules):
        cr = c_rules[i]
        cr.nr = r.nr
        cr.action = r.action
        cr.n_conds = len(r.conds)
        cr.conds = c_conds + k
        for arg, op, value, value_two in r.conds:
            cc = c_conds[k]
            cc.arg, cc.op, cc.value, cc.value_two = arg, op, value, value_two
            k += 1
    f = ffi.new("struct ocirun_sc_filter *")
    f.default_action = default
    f.arches = c_arches
    f.n_arches = len(arches)
    f.rules = c_rules
    f.n_rules = len(rules)
    f.optimize = 2 if len(rules) > _OPTIMIZE_ABOVE else 0
    bad_arch = ffi.new("int *")
    bad_rule = ffi.new("int *")

    fd = os.memfd_create("ocirun-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.ocirun_seccomp_export(f, fd, bad_arch, bad_rule)
        if rc < 0:
            why = os.strerror(-rc)
            if bad_arch[0] >= 0:
                # EDOM: an architecture of the other endianness than the native one
                raise ConfigError(
                    [
                        f"{arch_where[bad_arch[0]]}: libseccomp cannot add it to a "
                        f"filter for this machine: {why}"
                    ]
                )
            if bad_rule[0] >= 0:
                r = rules[bad_rule[0]]
                raise ConfigError([f"{r.where}: libseccomp refused the rule for {r.name!r}: {why}"])
            raise ConfigError([f"{_BASE}/defaultAction: libseccomp refused the filter: {why}"])
        size = os.lseek(fd, 0, os.SEEK_END)
        data = os.pread(fd, size, 0)
        while len(data) < size:
            data += os.pread(fd, size - len(data), len(data))
    finally:
        os.close(fd)
    if not data or len(data) % 8:
        raise OcirunError(f"seccomp: libseccomp exported a malformed program ({len(data)} bytes)")
    return data
