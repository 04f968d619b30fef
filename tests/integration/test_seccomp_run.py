"""linux.seccomp on real containers: the configured actions as the process sees them
(errno values, SIGSYS), argument conditions, with and without noNewPrivileges, unknown
syscall names, ENOSYS (not the default errno) for syscalls newer than the profile, a Docker-
like default-deny profile, and SCMP_ACT_NOTIFY handing its listener to listenerPath."""

from __future__ import annotations

import array
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from clitools import call, ok
from testenv import REPO

PROBE_DIR = "/home"  # the probe's directory is bound here (exists in the shared rootfs)
SIGSYS_EXIT = 128 + 31

# A default-deny profile in the style of container engines' defaults, written for these
# tests: what busybox, the static probe and the runtime's last steps need, all of them
# syscalls older than clone3 (435). Deliberately absent: acct (163), reboot, mount...
ALLOWED = """
accept accept4 access alarm arch_prctl bind brk capget capset chdir chmod chown clock_getres
clock_gettime clock_nanosleep clone close connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_wait eventfd eventfd2 execve execveat
exit exit_group faccessat fadvise64 fallocate fchdir fchmod fchmodat fchown fchownat fcntl
fdatasync fgetxattr flistxattr flock fork fstat fstatfs fsync ftruncate futex getcpu getcwd
getdents getdents64 getegid geteuid getgid getgroups getitimer getpeername getpgid getpgrp
getpid getppid getpriority getrandom getresgid getresuid getrlimit getrusage getsid
getsockname getsockopt gettid gettimeofday getuid getxattr inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch ioctl kill lchown lgetxattr link linkat listen listxattr
lseek lstat madvise membarrier memfd_create mincore mkdir mkdirat mknod mknodat mlock mmap
mprotect mremap msync munlock munmap nanosleep newfstatat open openat pause pipe pipe2 poll
ppoll prctl pread64 preadv preadv2 prlimit64 pselect6 pwrite64 pwritev read readahead
readlink readlinkat readv recvfrom recvmmsg recvmsg rename renameat renameat2 restart_syscall
rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
rt_sigsuspend rt_sigtimedwait sched_getaffinity sched_yield select sendfile sendmmsg sendmsg
sendto set_robust_list set_tid_address setgid setgroups setitimer setpgid setpriority
setregid setresgid setresuid setreuid setsid setsockopt setuid shutdown sigaltstack socket
socketpair splice stat statfs statx symlink symlinkat sync sysinfo tee tgkill time
timer_create timer_delete timer_settime timerfd_create timerfd_gettime timerfd_settime times
tkill truncate umask uname unlink unlinkat utime utimensat utimes vfork wait4 waitid write
writev
""".split()


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def probe_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe")
    subprocess.run(["sh", str(REPO / "tests/probe/build.sh"), str(out)], check=True)
    return out


def seccomp(default="SCMP_ACT_ALLOW", syscalls=(), nnp=True, probe: Path | None = None, **extra):
    def mutate(cfg):
        cfg["process"]["noNewPrivileges"] = nnp
        cfg["linux"]["seccomp"] = {
            "defaultAction": default,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": list(syscalls),
            **extra,
        }
        if probe is not None:
            cfg["mounts"].append(
                {
                    "destination": PROBE_DIR,
                    "type": "bind",
                    "source": str(probe),
                    "options": ["rbind", "ro"],
                }
            )

    return mutate


def rule(names, action, **kw) -> dict:
    return {"names": list(names), "action": action, **kw}


def run(rt, make_bundle, args, mutate, *, env=None, log: Path | None = None, debug=False):
    g = (("--log", str(log)) if log else ()) + (("--debug",) if debug else ())
    bundle = make_bundle(args=args, mutate=mutate)
    return call(rt, *g, "run", "--bundle", bundle, "sc", env=env)


def status_field(text: str, key: str) -> str:
    for line in text.splitlines():
        k, _, v = line.partition(":")
        if k == key:
            return v.strip()
    raise AssertionError(f"{key} not in {text!r}")


MKDIR = ["sh", "-c", "mkdir /dev/shm/made; echo rc=$?; ls -d /dev/shm/made"]


# --------------------------------------------------------------------------- actions


def test_without_seccomp_mkdir_works(rt, make_bundle):
    """The baseline the next tests change: no filter, /dev/shm is writable."""
    r = ok(run(rt, make_bundle, MKDIR + ["/proc/self/status"], None))
    assert r.stdout.splitlines()[:2] == ["rc=0", "/dev/shm/made"], r.stdout


@pytest.mark.parametrize(
    "errno_ret,message",
    [(1, "Operation not permitted"), (13, "Permission denied"), (None, "Operation not permitted")],
)
def test_errno_action_on_mkdir(rt, make_bundle, errno_ret, message):
    extra = {} if errno_ret is None else {"errnoRet": errno_ret}
    r = run(
        rt,
        make_bundle,
        MKDIR,
        seccomp(syscalls=[rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", **extra)]),
    )
    assert r.returncode != 0  # ls of the missing dir fails last
    assert r.stdout.splitlines() == ["rc=1"], r.stdout
    assert f"mkdir: can't create directory '/dev/shm/made': {message}" in r.stderr, r.stderr


def test_default_errno_ret(rt, make_bundle, probe_dir):
    """defaultErrnoRet applies to the default action (here for acct(2), 163)."""
    r = ok(
        run(
            rt,
            make_bundle,
            [f"{PROBE_DIR}/probe", "syscall", "163", "0"],
            seccomp(
                "SCMP_ACT_ERRNO",
                [rule(ALLOWED, "SCMP_ACT_ALLOW")],
                probe=probe_dir,
                defaultErrnoRet=95,
            ),
        )
    )
    assert r.stdout.strip() == "ret=-1 errno=95", r.stdout


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL"])
def test_kill_action_is_sigsys(rt, make_bundle, action):
    """The container's process killed by SIGSYS: `run` exits 128+31."""
    r = run(
        rt,
        make_bundle,
        ["mkdir", "/dev/shm/made"],
        seccomp(syscalls=[rule(["mkdir", "mkdirat"], action)]),
    )
    assert r.returncode == SIGSYS_EXIT, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr


def test_kill_action_in_a_child_of_the_shell(rt, make_bundle):
    r = run(
        rt,
        make_bundle,
        MKDIR,
        seccomp(syscalls=[rule(["mkdir", "mkdirat"], "SCMP_ACT_KILL_PROCESS")]),
    )
    assert r.stdout.splitlines() == [f"rc={SIGSYS_EXIT}"], r.stdout
    assert "Bad system call" in r.stderr, r.stderr  # the shell's word for SIGSYS


@pytest.mark.parametrize("nnp", [True, False])
def test_filter_applied_with_and_without_no_new_privileges(rt, make_bundle, nnp):
    r = run(
        rt,
        make_bundle,
        ["sh", "-c", "cat /proc/self/status; mkdir /dev/shm/made"],
        seccomp(syscalls=[rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=13)], nnp=nnp),
    )
    assert status_field(r.stdout, "Seccomp") == "2"
    assert status_field(r.stdout, "NoNewPrivs") == ("1" if nnp else "0")
    assert "Permission denied" in r.stderr, r.stderr


def test_no_filter_without_linux_seccomp(rt, make_bundle):
    r = ok(run(rt, make_bundle, ["cat", "/proc/self/status"], None))
    assert status_field(r.stdout, "Seccomp") == "0"


# --------------------------------------------------------------------------- conditions


def test_argument_condition(rt, make_bundle):
    """kill(2) refused only when its signal (arg 1) is 9: the process's own check."""
    script = (
        "sleep 30 & p=$!; "
        "kill -0 $p; echo zero=$?; "
        "kill -9 $p; echo nine=$?; "
        "kill -0 $p; echo alive=$?; "
        "kill -15 $p; echo term=$?; wait $p; echo waited=$?"
    )
    r = ok(
        run(
            rt,
            make_bundle,
            ["sh", "-c", script],
            seccomp(
                syscalls=[
                    rule(
                        ["kill"],
                        "SCMP_ACT_ERRNO",
                        errnoRet=1,
                        args=[{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}],
                    )
                ]
            ),
        )
    )
    assert r.stdout.splitlines() == ["zero=0", "nine=1", "alive=0", "term=0", "waited=143"], (
        r.stdout,
        r.stderr,
    )
    assert "Operation not permitted" in r.stderr


def test_masked_argument_condition(rt, make_bundle, probe_dir):
    """SCMP_CMP_MASKED_EQ on personality(2)'s arg 0: refused when (arg0 & 0xff) == 0x08;
    0xffffffff (a query of the current persona) passes."""
    r = ok(
        run(
            rt,
            make_bundle,
            [
                "sh",
                "-c",
                f"{PROBE_DIR}/probe syscall 135 0x108; {PROBE_DIR}/probe syscall 135 0xffffffff",
            ],
            seccomp(
                syscalls=[
                    rule(
                        ["personality"],
                        "SCMP_ACT_ERRNO",
                        errnoRet=22,
                        args=[
                            {
                                "index": 0,
                                "value": 0xFF,
                                "valueTwo": 0x08,
                                "op": "SCMP_CMP_MASKED_EQ",
                            }
                        ],
                    )
                ],
                probe=probe_dir,
            ),
        )
    )
    lines = r.stdout.splitlines()
    assert lines[0] == "ret=-1 errno=22", r.stdout
    assert lines[1] == "ret=0 errno=0", r.stdout  # PER_LINUX


# --------------------------------------------------------------------------- profiles


def test_unknown_syscall_name_is_skipped_and_said_at_debug_level(rt, make_bundle, tmp_path):
    """As runc: a profile may list syscalls newer than this host's libseccomp (Docker's
    does); they are skipped, said only with --debug, and nothing is printed on stderr."""
    log = tmp_path / "ocirun.log"
    r = run(
        rt,
        make_bundle,
        MKDIR,
        seccomp(
            syscalls=[
                rule(["no_such_syscall_xyz", "mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=13)
            ]
        ),
        log=log,
        debug=True,
    )
    assert "Permission denied" in r.stderr, r.stderr
    text = log.read_text()
    debug = [line for line in text.splitlines() if "level=debug" in line]
    assert any("no_such_syscall_xyz" in d for d in debug), text
    assert "level=warning" not in text, text
    # ... and the rest of the rule still applies.
    assert r.stdout.splitlines()[0] == "rc=1", r.stdout


@pytest.mark.parametrize("nnp", [True, False])
def test_default_deny_profile_runs_busybox(rt, make_bundle, nnp):
    script = (
        "echo hello; ls / > /dev/null && echo listed; mkdir /dev/shm/d && echo made; "
        "echo data > /dev/shm/d/f; cat /dev/shm/d/f; sleep 0.1 & wait; "
        "grep Seccomp: /proc/self/status"
    )
    r = ok(
        run(
            rt,
            make_bundle,
            ["sh", "-c", script],
            seccomp(
                "SCMP_ACT_ERRNO",
                [rule(ALLOWED + ["close_range", "faccessat2"], "SCMP_ACT_ALLOW")],
                nnp=nnp,
            ),
        )
    )
    lines = r.stdout.splitlines()
    assert lines[:4] == ["hello", "listed", "made", "data"], (r.stdout, r.stderr)
    assert lines[4].split() == ["Seccomp:", "2"]


def test_default_deny_denies_what_is_not_listed(rt, make_bundle, probe_dir):
    r = ok(
        run(
            rt,
            make_bundle,
            [f"{PROBE_DIR}/probe", "syscall", "163", "0"],
            seccomp("SCMP_ACT_ERRNO", [rule(ALLOWED, "SCMP_ACT_ALLOW")], probe=probe_dir),
        )
    )
    assert r.stdout.strip() == "ret=-1 errno=1", r.stdout  # acct: EPERM, the default


def test_syscall_newer_than_the_profile_is_enosys(rt, make_bundle, probe_dir):
    """clone3 (435) and a number no kernel has yet: ENOSYS, so libc falls back; an old
    unlisted syscall (acct, 163): the default errno. Profile: syscalls < 435 only."""
    probe = f"{PROBE_DIR}/probe"
    r = ok(
        run(
            rt,
            make_bundle,
            ["sh", "-c", f"{probe} syscall 435 0 0; {probe} syscall 1000; {probe} syscall 163 0"],
            seccomp("SCMP_ACT_ERRNO", [rule(ALLOWED, "SCMP_ACT_ALLOW")], probe=probe_dir),
        )
    )
    assert r.stdout.splitlines() == ["ret=-1 errno=38", "ret=-1 errno=38", "ret=-1 errno=1"], (
        r.stdout,
        r.stderr,
    )


def test_old_profile_without_close_range_and_without_no_new_privileges(rt, make_bundle):
    r = run(
        rt,
        make_bundle,
        ["echo", "ran"],
        seccomp("SCMP_ACT_ERRNO", [rule(ALLOWED, "SCMP_ACT_ALLOW")], nnp=False),
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ran\n"


# --------------------------------------------------------------------------- trampoline

# The init execs the process through the sealed trampoline, which execs the real program: a
# program the kernel refuses (ENOEXEC) is then reported by the trampoline itself, exit 127;
# a direct execve by the init would fail create with runc's `exec format error` instead. It
# says why in runc's (Go's) words.
TRAMPOLINE_SAYS = f"exec {PROBE_DIR}/notelf: exec format error"
NOT_ELF = f"{PROBE_DIR}/notelf"


def not_elf(tmp_path: Path):
    """A mutate adding NOT_ELF: an executable file that is no program (no ELF, no #!)."""
    (tmp_path / "bin").mkdir(exist_ok=True)
    path = tmp_path / "bin" / "notelf"
    path.write_bytes(b"\x00\x01 not a program\n")
    path.chmod(0o755)

    def mutate(cfg):
        cfg["mounts"].append(
            {
                "destination": PROBE_DIR,
                "type": "bind",
                "source": str(path.parent),
                "options": ["rbind", "ro"],
            }
        )

    return mutate


def both(*mutates):
    def mutate(cfg):
        for m in mutates:
            m(cfg)

    return mutate


def test_process_runs_through_the_trampoline(rt, make_bundle, tmp_path):
    r = run(rt, make_bundle, [NOT_ELF], not_elf(tmp_path))
    assert r.returncode == 127, (r.returncode, r.stderr)
    assert TRAMPOLINE_SAYS in r.stderr, r.stderr


def test_the_trampoline_says_why_execve_failed(rt, make_bundle, tmp_path):
    """A script whose #! interpreter is missing passes the executable check and fails in
    execve: one line, in runc's words (runc's bats 'runc exec [execve error]')."""
    (tmp_path / "bin").mkdir()
    script = tmp_path / "bin" / "run.sh"
    script.write_text("#!/mmnnttbb foo bar\nsh\n")
    script.chmod(0o755)

    def mutate(cfg):
        cfg["mounts"].append(
            {
                "destination": PROBE_DIR,
                "type": "bind",
                "source": str(tmp_path / "bin"),
                "options": ["rbind", "ro"],
            }
        )

    r = run(rt, make_bundle, [f"{PROBE_DIR}/run.sh"], mutate)
    assert r.returncode == 127, (r.returncode, r.stderr)
    assert r.stderr.strip().splitlines() == [
        f"exec {PROBE_DIR}/run.sh: no such file or directory"
    ], r.stderr


def test_profile_refusing_execveat_still_runs_through_the_trampoline(rt, make_bundle, tmp_path):
    """execveat refused by the profile: the init reaches the sealed trampoline through
    /proc/self/fd (never a direct execve of the program, CVE-2019-5736), says so in the log,
    and the process runs."""
    refuse = seccomp(syscalls=[rule(["execveat"], "SCMP_ACT_ERRNO", errnoRet=1)])
    log = tmp_path / "log.json"
    r = ok(run(rt, make_bundle, ["echo", "ran"], refuse, log=log, debug=True))
    assert r.stdout == "ran\n" and r.stderr == ""
    assert "exec'd through the sealed trampoline at /proc/self/fd" in log.read_text()
    r = run(rt, make_bundle, [NOT_ELF], both(refuse, not_elf(tmp_path)))
    assert r.returncode == 127, (r.returncode, r.stderr)
    assert TRAMPOLINE_SAYS in r.stderr, r.stderr


def test_profile_refusing_execveat_without_procfs_is_refused(rt, make_bundle):
    refuse = seccomp(syscalls=[rule(["execveat"], "SCMP_ACT_ERRNO")])

    def mutate(cfg):
        refuse(cfg)
        cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/proc"]

    r = run(rt, make_bundle, ["true"], mutate)
    assert r.returncode != 0
    assert (
        "/linux/seccomp: the profile refuses execveat and the container mounts no procfs at "
        "/proc: ocirun cannot exec the process through its sealed trampoline" in r.stderr
    ), r.stderr
    assert "Traceback" not in r.stderr  # nothing left behind: the rt fixture checks it


# --------------------------------------------------------------------------- notify


class Listener:
    """The seccomp agent's side of listenerPath: accepts one connection in a thread and
    keeps what arrived (data, fds, anything after the message)."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(4)
        self.sock.settimeout(15)
        self.messages: list[tuple[bytes, list[int]]] = []
        self.connections = 0
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
            self.connections += 1
            with conn:
                conn.settimeout(10)
                while True:
                    fds = array.array("i")
                    data, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(16 * fds.itemsize))
                    for level, kind, payload in anc:
                        if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                    if not data and not fds:
                        break
                    self.messages.append((data, list(fds)))
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def close(self):
        self.thread.join(5)
        self.sock.close()
        for _, fds in self.messages:
            for fd in fds:
                os.close(fd)


def test_notify_listener_gets_one_message_and_the_syscall_waits(rt, make_bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    listener = Listener(tmp_path / "agent.sock")
    metadata = "agent metadata: x=1"
    annotations = {"org.test.seccomp": "notify"}

    def mutate(cfg):
        seccomp(
            syscalls=[rule(["mkdir", "mkdirat"], "SCMP_ACT_NOTIFY")],
            listenerPath=listener.path,
            listenerMetadata=metadata,
        )(cfg)
        cfg["annotations"] = annotations
        cfg["mounts"].append(
            {"destination": "/home", "type": "bind", "source": str(out), "options": ["rbind", "rw"]}
        )

    bundle = make_bundle(
        args=["sh", "-c", "echo before > /home/before; mkdir /dev/shm/x; echo after > /home/after"],
        mutate=mutate,
    )
    try:
        ok(call(rt, "create", "--bundle", bundle, "sc"))
        try:
            pid = rt.state("sc")["pid"]
            ok(call(rt, "start", "sc"))
            deadline = time.monotonic() + 10
            while not (out / "before").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert (out / "before").exists()
            time.sleep(0.5)
            # Nobody answers the notification: mkdir waits, "after" never comes.
            assert not (out / "after").exists()
            assert rt.state("sc")["status"] == "running"
        finally:
            ok(call(rt, "delete", "--force", "sc"))
        listener.thread.join(5)
        assert listener.error is None, listener.error
        assert listener.connections == 1
        assert len(listener.messages) == 1, listener.messages
        data, fds = listener.messages[0]
        assert len(fds) == 1, fds
        assert os.readlink(f"/proc/self/fd/{fds[0]}") == "anon_inode:seccomp notify"
    finally:
        listener.close()
    msg = json.loads(data)
    assert msg["ociVersion"] == "1.3.0"
    assert msg["fds"] == ["seccompFd"]
    assert msg["pid"] == pid
    assert msg["metadata"] == metadata
    st = msg["state"]
    assert st["id"] == "sc"
    assert st["pid"] == pid
    assert st["bundle"] == bundle
    assert st["annotations"] == annotations
    assert st["status"] in ("creating", "created")


def test_notify_without_listener_socket_fails_create(rt, make_bundle, tmp_path):
    path = str(tmp_path / "nobody.sock")
    r = call(
        rt,
        "create",
        "--bundle",
        make_bundle(
            args=["true"],
            mutate=seccomp(
                syscalls=[rule(["mkdir", "mkdirat"], "SCMP_ACT_NOTIFY")], listenerPath=path
            ),
        ),
        "sc",
    )
    assert r.returncode != 0
    assert path in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert ok(call(rt, "list", "-q")).stdout.split() == []
