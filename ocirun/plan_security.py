"""The plan's security decisions that depend on more than one section of the config: when the
init loads its seccomp filter, and how it reaches the sealed exec trampoline.

Pure, like the rest of the planner: the profile and the mounts come in as data.
"""

from __future__ import annotations

# when the init loads its seccomp filter (csrc/ocirun.h OCIRUN_SECCOMP_*)
SECCOMP_NONE, SECCOMP_EARLY, SECCOMP_READY, SECCOMP_LAST = 0, 1, 2, 3
# how the init execs the sealed trampoline (csrc/ocirun.h OCIRUN_EXEC_*)
EXEC_EXECVEAT, EXEC_PROC_FD = 1, 2
# how it checks that argv[0] may be executed (OCIRUN_CHECK_*)
CHECK_FACCESSAT2, CHECK_MODE_BITS = 1, 2


class Filter:
    """A compiled seccomp profile (seccomp.compile; recorded for exec by execfacts): what
    the child passes to seccomp(2)."""

    __slots__ = ("bpf", "flags", "notify", "warnings", "notes")

    def __init__(
        self,
        bpf: bytes,
        flags: int,
        notify: bool,
        warnings: list[str],
        notes: list[str] | None = None,
    ):
        self.bpf = bpf  # struct sock_filter[], 8 bytes each, host endianness
        self.flags = flags  # SECCOMP_FILTER_FLAG_* for seccomp(2)
        self.notify = notify  # a rule is SCMP_ACT_NOTIFY: flags has NEW_LISTENER
        self.warnings = warnings  # what the profile asks that the filter can't do
        # for --debug: syscall names this libseccomp does not know (skipped, as runc says
        # at debug level: a profile lists newer syscalls than the host has), the cache
        self.notes = notes if notes is not None else []

    @property
    def insns(self) -> int:
        """sock_fprog.len"""
        return len(self.bpf) // 8

    def __repr__(self) -> str:
        return (
            f"Filter(insns={self.insns}, flags={self.flags:#x}, notify={self.notify}, "
            f"warnings={len(self.warnings)})"
        )


_ALLOWING = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")


def seccomp_when(no_new_privs: bool, notify: bool) -> int:
    """When the init loads the filter (runc's order): without no_new_privs loading needs
    CAP_SYS_ADMIN, so it goes before the credentials; a notify listener must reach the
    runtime before READY; otherwise as late as possible."""
    if not no_new_privs:
        return SECCOMP_EARLY
    if notify:
        return SECCOMP_READY
    return SECCOMP_LAST


def plainly_allows(seccomp: dict | None, syscall: str) -> bool:
    """Whether the profile lets `syscall` through whatever its arguments: no rule with
    argument conditions names it, and the action it gets (its rules', else the default) is
    ALLOW or LOG."""
    if not seccomp:
        return True
    actions = []
    for rule in seccomp.get("syscalls") or []:
        if syscall in (rule.get("names") or []):
            if rule.get("args"):
                return False
            actions.append(rule.get("action"))
    if not actions:
        actions = [seccomp.get("defaultAction")]
    return all(a in _ALLOWING for a in actions)


def mounts_procfs(mounts: list[dict]) -> bool:
    """Whether the container mounts a procfs at /proc (where /proc/self/fd/N resolves)."""
    return any(
        m.get("type") == "proc" and (m.get("destination") or "").rstrip("/") == "/proc"
        for m in mounts
    )


def exec_route(seccomp: dict | None, mounts: list[dict], problems: list[str]) -> tuple[int, str]:
    """How the init reaches the sealed trampoline (CVE-2019-5736: the container's process
    never starts from an image whose /proc/self/exe is the runtime's), and a line for the
    log when it is not the usual execveat. A profile that refuses execveat gets execve of
    /proc/self/fd/N (the same sealed file, through the container's procfs); without a procfs
    at /proc there is no protected way, and the config is refused rather than run
    unprotected (runc, whose own binary is the sealed copy, would run it)."""
    if plainly_allows(seccomp, "execveat"):
        return EXEC_EXECVEAT, ""
    if mounts_procfs(mounts):
        return (
            EXEC_PROC_FD,
            "the seccomp profile does not plainly allow execveat: the process is exec'd "
            "through the sealed trampoline at /proc/self/fd instead",
        )
    problems.append(
        "/linux/seccomp: the profile refuses execveat and the container mounts no procfs at "
        "/proc: ocirun cannot exec the process through its sealed trampoline (CVE-2019-5736)"
    )
    return EXEC_EXECVEAT, ""


def exec_check(seccomp: dict | None, when: int, kernel_has_faccessat2: bool) -> tuple[int, str]:
    """How the init checks argv[0] for X_OK, and a debug line when not with faccessat2:
    faccessat2 (AT_EACCESS: ACLs, read-only mounts) unless the kernel lacks it or the
    filter, loaded before the check (SECCOMP_EARLY), does not allow it; then the mode bits,
    as Go's exec.LookPath (runc) does."""
    if not kernel_has_faccessat2:
        return CHECK_MODE_BITS, "no faccessat2 (kernel < 5.8): argv[0] checked by its mode bits"
    if when == SECCOMP_EARLY and not plainly_allows(seccomp, "faccessat2"):
        return (
            CHECK_MODE_BITS,
            "the seccomp filter (loaded before the executable check) does not allow "
            "faccessat2: argv[0] checked by its mode bits",
        )
    return CHECK_FACCESSAT2, ""
