"""Unit tests for ocirun.seccomp: linux.seccomp -> BPF (compiled in the parent), its cache
(ocirun.seccomp_cache), and the programs' behaviour once loaded (in a forked child, through
ctypes)."""

from __future__ import annotations

import copy
import ctypes
import errno
import json
import os
import platform
import signal
import stat
import struct
import time

import pytest

from ocirun import seccomp, seccomp_cache
from ocirun.errors import ConfigError

X86_64 = platform.machine() == "x86_64"
SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}.get(platform.machine())
# x86_64 syscall numbers used by the load tests
NR = {
    "close": 3,
    "lseek": 8,
    "getpid": 39,
    "getppid": 110,
    "getrandom": 318,
    "clone3": 435,
    "acct": 163,
}

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def run_filtered(filt: seccomp.Filter, body, flags: int | None = None):
    """Fork; the child sets no_new_privs, loads `filt` and runs body(listener_fd) -> a JSON-able
    result sent back through a pipe. Returns (wait status, result or None)."""
    buf = ctypes.create_string_buffer(filt.bpf, len(filt.bpf))
    prog = SockFprog(filt.insns, ctypes.addressof(buf))
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (child)
        code = 0
        try:
            os.close(rfd)
            libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: a SIGSYS leaves no core file
            if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
                os._exit(120)
            fd = libc.syscall(
                SYS_SECCOMP, 1, filt.flags if flags is None else flags, ctypes.byref(prog)
            )
            if fd < 0:
                os.write(wfd, json.dumps({"load_errno": ctypes.get_errno()}).encode())
                os._exit(121)
            out = json.dumps(body(fd)).encode()
            os.write(wfd, out)
        except BaseException:
            code = 122
        os._exit(code)
    os.close(wfd)
    chunks = []
    while True:
        chunk = os.read(rfd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(rfd)
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    return status, (json.loads(data) if data else None)


def sys(nr: int, *args) -> int:
    """A raw syscall in the child: its result, or -errno."""
    ctypes.set_errno(0)
    r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    return -ctypes.get_errno() if r == -1 else r


needs_load = pytest.mark.skipif(not X86_64, reason="load tests use x86_64 syscall numbers")


def profile(default="SCMP_ACT_ALLOW", syscalls=(), **kw) -> dict:
    return {"defaultAction": default, "syscalls": list(syscalls), **kw}


# --------------------------------------------------------------------------- compiling


@pytest.mark.parametrize("action", sorted(seccomp.ACTIONS))
def test_each_action_compiles_as_rule(action):
    f = seccomp.compile(
        profile("SCMP_ACT_KILL_PROCESS", [{"names": ["getppid", "mkdir"], "action": action}])
    )
    assert f.bpf and len(f.bpf) % 8 == 0
    assert f.notify == (action == "SCMP_ACT_NOTIFY")
    assert bool(f.flags & seccomp.FLAG_NEW_LISTENER) == f.notify


@pytest.mark.parametrize("action", sorted(set(seccomp.ACTIONS) - {"SCMP_ACT_NOTIFY"}))
def test_each_action_compiles_as_default(action):
    f = seccomp.compile(
        profile(action, [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99}])
    )
    assert f.bpf and len(f.bpf) % 8 == 0 and not f.notify


def test_default_errno_ret_in_program():
    f = seccomp.compile(profile("SCMP_ACT_ERRNO", defaultErrnoRet=42))
    rets = [k for code, _, _, k in iter_insns(f.bpf) if code == 0x06]
    assert seccomp.ACT_ERRNO | 42 in rets
    f = seccomp.compile(profile("SCMP_ACT_ERRNO"))
    assert seccomp.ACT_ERRNO | errno.EPERM in [k for c, _, _, k in iter_insns(f.bpf) if c == 0x06]


def iter_insns(bpf: bytes):
    return [struct.unpack("=HBBI", bpf[i : i + 8]) for i in range(0, len(bpf), 8)]


@pytest.mark.parametrize("op", sorted(seccomp.OPS))
def test_each_op_compiles(op):
    f = seccomp.compile(
        profile(
            syscalls=[
                {
                    "names": ["close"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "op": op, "value": 7, "valueTwo": 3}],
                }
            ]
        )
    )
    assert f.bpf


def test_unknown_syscall_is_skipped_with_a_note():
    """runc says it at debug level: profiles list syscalls newer than the host's."""
    base = profile(syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}])
    f0 = seccomp.compile(base)
    assert f0.warnings == f0.notes == []
    with_unknown = copy.deepcopy(base)
    with_unknown["syscalls"][0]["names"].append("no_such_syscall")
    f = seccomp.compile(with_unknown)
    assert f.bpf == f0.bpf
    assert f.warnings == [] and len(f.notes) == 1
    assert "/linux/seccomp/syscalls/0/names/1" in f.notes[0]
    assert "no_such_syscall" in f.notes[0]


def test_rule_equal_to_default_is_skipped():
    f0 = seccomp.compile(profile())
    f = seccomp.compile(profile(syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}]))
    assert f.bpf == f0.bpf
    # ERRNO with the default's errno is the same action too
    f1 = seccomp.compile(
        profile(
            "SCMP_ACT_ERRNO",
            [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}],
        )
    )
    assert f1.bpf


def test_unknown_arch_names_its_index():
    with pytest.raises(ConfigError) as e:
        seccomp.compile(profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_PDP11"]))
    assert "/linux/seccomp/architectures/1" in str(e.value)
    assert "SCMP_ARCH_PDP11" in str(e.value)


@pytest.mark.skipif(
    __import__("sys").byteorder != "little", reason="s390x is the native endianness"
)
def test_other_endianness_arch_names_its_index():
    with pytest.raises(ConfigError) as e:
        seccomp.compile(profile(architectures=["SCMP_ARCH_X86", "SCMP_ARCH_S390X"]))
    assert "/linux/seccomp/architectures/1: SCMP_ARCH_S390X" in str(e.value)


def test_known_arches_compile():
    f = seccomp.compile(
        profile(
            "SCMP_ACT_ERRNO",
            [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}],
            architectures=[
                "SCMP_ARCH_X86_64",
                "SCMP_ARCH_X86",
                "SCMP_ARCH_X32",
                "SCMP_ARCH_AARCH64",
                "SCMP_ARCH_ARM",
            ],
        )
    )
    assert f.bpf


@pytest.mark.parametrize(
    "bad, where",
    [
        ({"defaultAction": "SCMP_ACT_BOGUS"}, "/linux/seccomp/defaultAction"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "/linux/seccomp/defaultAction"),
        (profile(flags=["SECCOMP_FILTER_FLAG_BOGUS"]), "/linux/seccomp/flags/0"),
        (
            profile(syscalls=[{"names": ["read"], "action": "SCMP_ACT_NOPE"}]),
            "/linux/seccomp/syscalls/0/action",
        ),
        (
            profile(
                syscalls=[
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "op": "SCMP_CMP_LIKE", "value": 1}],
                    }
                ]
            ),
            "/linux/seccomp/syscalls/0/args/0/op",
        ),
        (
            profile(
                syscalls=[
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 6, "op": "SCMP_CMP_EQ", "value": 1}],
                    }
                ]
            ),
            "/linux/seccomp/syscalls/0/args/0/index",
        ),
        (
            profile(
                syscalls=[
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": -1}],
                    }
                ]
            ),
            "/linux/seccomp/syscalls/0/args/0/value",
        ),
        (
            profile(syscalls=[{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 5}]),
            "/linux/seccomp/syscalls/0/errnoRet",
        ),
        (
            profile(syscalls=[{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]),
            "/linux/seccomp/syscalls/0/errnoRet",
        ),
        (profile("SCMP_ACT_ALLOW", defaultErrnoRet=3), "/linux/seccomp/defaultErrnoRet"),
        (
            profile(syscalls=[{"names": [], "action": "SCMP_ACT_ERRNO"}]),
            "/linux/seccomp/syscalls/0/names",
        ),
        (
            profile(syscalls=[{"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}]),
            "/linux/seccomp/syscalls/0/names/1",
        ),
    ],
)
def test_config_errors_name_the_path(bad, where):
    """The profile is checked with its config (validate.py, whose verdict is cached);
    seccomp.compile trusts what it is given."""
    from ocirun import validate

    cfg = {
        "ociVersion": "1.3.0",
        "process": {"args": ["sh"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "linux": {"seccomp": bad},
    }
    problems = validate.validate(cfg)
    assert any(p.startswith(where + ":") for p in problems), problems


def test_flags():
    f = seccomp.compile(
        profile(
            flags=[
                "SECCOMP_FILTER_FLAG_TSYNC",
                "SECCOMP_FILTER_FLAG_LOG",
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            ]
        )
    )
    assert f.flags == seccomp.FLAG_TSYNC | seccomp.FLAG_LOG | seccomp.FLAG_SPEC_ALLOW
    # WAIT_KILLABLE_RECV means nothing without a listener (and the kernel says EINVAL)
    f = seccomp.compile(profile(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]))
    assert f.flags == 0 and "WAIT_KILLABLE_RECV" in f.warnings[0]
    f = seccomp.compile(
        profile(
            syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}],
            flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"],
        )
    )
    assert f.notify
    assert f.flags == (
        seccomp.FLAG_WAIT_KILLABLE_RECV
        | seccomp.FLAG_NEW_LISTENER
        | seccomp.FLAG_TSYNC
        | seccomp.FLAG_TSYNC_ESRCH
    )


def test_no_enosys_stub_for_permissive_defaults():
    rules = [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]
    for default in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"):
        f = seccomp.compile(profile(default, rules))
        assert seccomp.ACT_ERRNO | errno.ENOSYS not in [
            k for c, _, _, k in iter_insns(f.bpf) if c == 6
        ]
    f = seccomp.compile(
        profile("SCMP_ACT_KILL", [{"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}])
    )
    assert seccomp.ACT_ERRNO | errno.ENOSYS in [k for c, _, _, k in iter_insns(f.bpf) if c == 6]


# --------------------------------------------------------------------------- loading


@needs_load
def test_errno_rule_blocks_mkdir(tmp_path):
    f = seccomp.compile(
        profile(
            syscalls=[{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99}]
        )
    )

    def body(_fd):
        try:
            os.mkdir(tmp_path / "x")
        except OSError as e:
            return {"errno": e.errno, "cwd": os.getcwd() != ""}
        return {"errno": 0}

    status, out = run_filtered(f, body)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, out)
    assert out == {"errno": 99, "cwd": True}
    assert not (tmp_path / "x").exists()


@needs_load
@pytest.mark.parametrize(
    "action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"]
)
def test_kill_and_trap_give_sigsys(action):
    f = seccomp.compile(profile(syscalls=[{"names": ["getppid"], "action": action}]))
    status, out = run_filtered(f, lambda _fd: sys(NR["getppid"]))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS, (status, out)


@needs_load
def test_log_allows_and_trace_without_tracer_is_enosys():
    f = seccomp.compile(
        profile(
            syscalls=[
                {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
                {"names": ["getpid"], "action": "SCMP_ACT_TRACE", "errnoRet": 5},
            ]
        )
    )
    status, out = run_filtered(f, lambda _fd: [sys(NR["getppid"]), sys(NR["getpid"])])
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, out)
    assert out == [os.getpid(), -errno.ENOSYS]


@needs_load
def test_notify_returns_a_listener_fd():
    f = seccomp.compile(
        profile(
            syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}],
            flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        )
    )
    status, out = run_filtered(f, lambda fd: fd)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, out)
    assert out >= 3


@needs_load
def test_log_and_spec_allow_flags_load():
    f = seccomp.compile(
        profile(
            syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}],
            flags=[
                "SECCOMP_FILTER_FLAG_LOG",
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                "SECCOMP_FILTER_FLAG_TSYNC",
            ],
        )
    )
    status, out = run_filtered(f, lambda _fd: sys(NR["getppid"]))
    assert os.WIFEXITED(status) and out == -errno.EPERM, (status, out)


CLOSE_OPS = [
    # op, value, valueTwo, {fd: matches}
    ("SCMP_CMP_NE", 1000, 0, {1000: False, 1001: True}),
    ("SCMP_CMP_LT", 1001, 0, {1000: True, 1001: False}),
    ("SCMP_CMP_LE", 1001, 0, {1001: True, 1002: False}),
    ("SCMP_CMP_EQ", 1001, 0, {1000: False, 1001: True}),
    ("SCMP_CMP_GE", 1001, 0, {1000: False, 1001: True}),
    ("SCMP_CMP_GT", 1001, 0, {1001: False, 1002: True}),
    # value is the mask, valueTwo what the masked argument must equal (1000 = 0x3e8)
    ("SCMP_CMP_MASKED_EQ", 0xFF0, 0x3E0, {1000: True, 1024: False}),
]


@needs_load
@pytest.mark.parametrize("op, value, value_two, probes", CLOSE_OPS, ids=[c[0] for c in CLOSE_OPS])
def test_arg_ops(op, value, value_two, probes):
    f = seccomp.compile(
        profile(
            syscalls=[
                {
                    "names": ["close"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 77,
                    "args": [{"index": 0, "op": op, "value": value, "valueTwo": value_two}],
                }
            ]
        )
    )
    status, out = run_filtered(f, lambda _fd: {str(fd): sys(NR["close"], fd) for fd in probes})
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, out)
    assert out == {str(fd): (-77 if hit else -errno.EBADF) for fd, hit in probes.items()}


@needs_load
def test_same_index_args_are_ored_different_indexes_anded():
    f = seccomp.compile(
        profile(
            syscalls=[
                {
                    "names": ["close"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 77,
                    "args": [
                        {"index": 0, "op": "SCMP_CMP_EQ", "value": 1000},
                        {"index": 0, "op": "SCMP_CMP_EQ", "value": 1001},
                    ],
                },
                {
                    "names": ["lseek"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 78,
                    "args": [
                        {"index": 0, "op": "SCMP_CMP_EQ", "value": 1000},
                        {"index": 2, "op": "SCMP_CMP_EQ", "value": 1},
                    ],
                },
            ]
        )
    )

    def body(_fd):
        return [
            sys(NR["close"], 1000),
            sys(NR["close"], 1001),
            sys(NR["close"], 1002),
            sys(NR["lseek"], 1000, 0, 1),
            sys(NR["lseek"], 1000, 0, 0),
            sys(NR["lseek"], 1001, 0, 1),
        ]

    status, out = run_filtered(f, body)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, out)
    e = -errno.EBADF
    assert out == [-77, -77, e, -78, e, e]


# Enough for the child to run its body and report under a default-deny profile. The largest
# of them on x86_64 is exit_group (231).
CHILD_NEEDS = [
    "exit",
    "exit_group",
    "write",
    "brk",
    "mmap",
    "munmap",
    "mprotect",
    "madvise",
    "rt_sigprocmask",
    "rt_sigaction",
    "futex",
    "getpid",
]


@needs_load
def test_newer_syscalls_get_enosys():
    f = seccomp.compile(
        profile(
            "SCMP_ACT_ERRNO",
            [{"names": CHILD_NEEDS, "action": "SCMP_ACT_ALLOW"}],
            architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        )
    )
    buf = ctypes.create_string_buffer(8)

    def body(_fd):
        return {
            "getpid": sys(NR["getpid"]) > 0,  # allowed
            "getppid": sys(NR["getppid"]),  # older than the profile: default (EPERM)
            "getrandom": sys(NR["getrandom"], ctypes.addressof(buf), 8, 0),  # newer: ENOSYS
            "clone3": sys(NR["clone3"], 0, 0),
        }

    status, out = run_filtered(f, body)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, out)
    assert out == {
        "getpid": True,
        "getppid": -errno.EPERM,
        "getrandom": -errno.ENOSYS,
        "clone3": -errno.ENOSYS,
    }


@needs_load
def test_enosys_stub_absent_when_default_is_errno_enosys():
    f = seccomp.compile(
        profile(
            "SCMP_ACT_ERRNO",
            [{"names": CHILD_NEEDS, "action": "SCMP_ACT_ALLOW"}],
            defaultErrnoRet=errno.ENOSYS,
        )
    )
    status, out = run_filtered(f, lambda _fd: [sys(NR["getppid"]), sys(NR["clone3"], 0, 0)])
    assert out == [-errno.ENOSYS, -errno.ENOSYS], (status, out)


# --------------------------------------------------------------------------- Docker-like profile

DOCKER_ALLOW = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat
fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64
fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64
futex_wait futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32
geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday
getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel
ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup
io_submit ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown
lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr
lstat lstat64 madvise map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir
mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify
mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink
mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep
newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2
pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead
readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile
sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32
setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt
set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown
sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64
statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time
timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat
utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
arch_prctl modify_ldt clone
""".split()


def docker_like() -> dict:
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": DOCKER_ALLOW, "action": "SCMP_ACT_ALLOW"},
            {
                "names": ["socket"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno.EAFNOSUPPORT,
                "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": ["socket"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}],
            },
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
                ],
            },
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        ],
    }


def test_docker_like_profile_compiles_fast():
    prof = docker_like()
    seccomp.compile(prof)  # warm: shim import, sha256
    t0 = time.perf_counter()
    f = seccomp.compile(prof)
    ms = (time.perf_counter() - t0) * 1000
    print(
        f"\ndocker-like profile: {len(prof['syscalls'][0]['names'])} names, {f.insns} insns, "
        f"{ms:.1f} ms, {len(f.warnings)} warnings"
    )
    assert f.insns <= seccomp.BPF_MAXINSNS


@needs_load
def test_docker_like_profile_runs_python():
    f = seccomp.compile(docker_like())

    def body(_fd):
        import subprocess  # forks and execs under the filter (clone/execve allowed)

        return {
            "cwd": os.getcwd(),
            "ls": len(os.listdir("/")) > 0,
            "acct": sys(NR["acct"], 0),  # not in the profile: EPERM
            "clone3": sys(NR["clone3"], 0, 0),  # explicit ENOSYS rule
            "true": subprocess.run(["/bin/true"]).returncode,
        }

    status, out = run_filtered(f, body)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, out)
    assert out == {
        "cwd": os.getcwd(),
        "ls": True,
        "acct": -errno.EPERM,
        "clone3": -errno.ENOSYS,
        "true": 0,
    }


# --------------------------------------------------------------------------- cache


def test_cache_hit_same_bytes_without_libseccomp(tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    prof = docker_like()
    first = seccomp_cache.compile_cached(prof, cache)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    files = os.listdir(cache)
    assert len(files) == 1 and files[0].endswith(".bpf")
    assert stat.S_IMODE(os.stat(os.path.join(cache, files[0])).st_mode) == 0o600

    def boom(*a, **k):
        raise AssertionError("libseccomp called on a cache hit")

    monkeypatch.setattr(seccomp, "compile", boom)
    monkeypatch.setattr(seccomp, "_native", boom)
    again = seccomp_cache.compile_cached(copy.deepcopy(prof), cache)
    assert again.bpf == first.bpf
    assert (again.flags, again.notify, again.warnings, again.notes) == (
        first.flags,
        first.notify,
        first.warnings,
        first.notes,
    )
    # key order does not matter (canonical JSON)
    reordered = dict(reversed(list(prof.items())))
    assert seccomp_cache.compile_cached(reordered, cache).bpf == first.bpf


def test_cache_miss_on_changed_profile(tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    calls = []
    real = seccomp.compile

    def counting(sec):
        calls.append(1)
        return real(sec)

    monkeypatch.setattr(seccomp, "compile", counting)
    p1 = profile(syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}])
    p2 = profile(syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5}])
    a = seccomp_cache.compile_cached(p1, cache)
    b = seccomp_cache.compile_cached(p2, cache)
    c = seccomp_cache.compile_cached(p1, cache)
    assert len(calls) == 2
    assert a.bpf != b.bpf and a.bpf == c.bpf
    assert len([n for n in os.listdir(cache) if n.endswith(".bpf")]) == 2
    assert not [n for n in os.listdir(cache) if n.endswith(".tmp")]


def test_cache_corrupt_file_is_recompiled(tmp_path):
    cache = str(tmp_path / "cache")
    prof = profile(syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}])
    good = seccomp_cache.compile_cached(prof, cache)
    path = os.path.join(cache, os.listdir(cache)[0])
    with open(path, "r+b") as f:
        f.seek(-3, os.SEEK_END)
        f.write(b"\xff\xff\xff")
    assert seccomp_cache.compile_cached(prof, cache).bpf == good.bpf
    with open(path, "rb") as f:
        assert f.read().endswith(good.bpf)  # rewritten


def test_untrusted_cache_dir_is_not_used(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(cache, 0o777)
    prof = profile(syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}])
    f = seccomp_cache.compile_cached(prof, str(cache))
    assert f.bpf == seccomp.compile(prof).bpf
    assert os.listdir(cache) == []
    assert any("not used" in n for n in f.notes)


def test_cache_errors_are_not_cached(tmp_path):
    cache = str(tmp_path / "cache")
    bad = profile(architectures=["SCMP_ARCH_NOPE"])
    for _ in range(2):
        with pytest.raises(ConfigError):
            seccomp_cache.compile_cached(bad, cache)
    assert os.listdir(cache) == []


def test_libseccomp_version():
    assert seccomp.libseccomp_version().count(".") == 2


@pytest.mark.parametrize("module", ["ocirun.seccomp", "ocirun.seccomp_cache"])
def test_module_is_light(module):
    """Neither hashlib nor the cffi shim (libseccomp) at import time."""
    import subprocess
    import sys as _sys

    code = (
        f"import sys; import {module}; "
        "print(sorted(m for m in ('hashlib', 'ocirun._shim') if m in sys.modules))"
    )
    out = subprocess.run([_sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
