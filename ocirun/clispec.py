"""runc's command line, declared once: the global flags, and each command's flags,
arguments and body, as data.

Two parsers are built from it: the typer app (cli.py: help, full error messages, every
command) and the hot commands' parser (_lean/argv.py: what engines send, without
importing typer). The C front door (csrc/launcher/launcher.c) reads the global flags and
state/start/kill/delete/list's own flags from a copy of its own, checked against this one
by tests/unit/test_clispec.py.

Flags are read the way runc's Go flag parser reads them: `-name` and `--name` are one
flag, `--flag=value` or `--flag value`, and a boolean flag may be given a Go boolean
(`--detach=true`, `-d=0`).
"""

# A flag's kind: what its value is (and the parameter's type in the typer app).
STR = "str"
INT = "int"
BOOL = "bool"
INTS = "ints"  # repeatable, collected in order
STRS = "strs"

REQUIRED = ...  # an argument without a default


class Flag:
    """An option: its names (the long one first), the body's keyword, kind and default."""

    __slots__ = ("names", "key", "kind", "default", "help", "hidden", "min")

    def __init__(self, names, key, kind=STR, default=None, help=None, hidden=False, min=None):
        self.names = names
        self.key = key
        self.kind = kind
        self.default = default
        self.help = help
        self.hidden = hidden
        self.min = min

    @property
    def takes_value(self) -> bool:
        return self.kind != BOOL


class Arg:
    """A positional argument; kind STRS: all the remaining words."""

    __slots__ = ("key", "kind", "default", "help", "metavar")

    def __init__(self, key, kind=STR, default=REQUIRED, help=None, metavar=None):
        self.key = key
        self.kind = kind
        self.default = default
        self.help = help
        self.metavar = metavar


class Command:
    """`body`: the function that runs it, `module.function` in ocirun, called as
    body(globals, **kw) with the keywords of the flags and arguments given.
    `hot`: parsed by _lean/argv.py (engines send it per container). `interspersed`:
    False where options end at the first argument (runc's SkipArgReorder: exec, ps)."""

    __slots__ = ("name", "body", "help", "params", "hot", "interspersed")

    def __init__(self, name, body, help, params=(), hot=False, interspersed=True):
        self.name = name
        self.body = body
        self.help = help
        self.params = params
        self.hot = hot
        self.interspersed = interspersed

    def flags(self) -> list[Flag]:
        return [p for p in self.params if isinstance(p, Flag)]

    def args(self) -> list[Arg]:
        return [p for p in self.params if isinstance(p, Arg)]

    def function(self):
        """The body, its module imported now (each command imports only its own)."""
        module, _, name = self.body.rpartition(".")
        return getattr(__import__(f"ocirun.{module}", fromlist=[name]), name)


# The global flags: the keywords of commands.Globals. (--version/-v, a flag of the typer
# app alone, prints the version: cli.py; _lean/argv.py answers `ocirun --version` too.)
GLOBAL = (
    Flag(
        ("--root",),
        "root",
        help="state directory (default /run/ocirun; for a non-root user $XDG_RUNTIME_DIR/ocirun)",
    ),
    Flag(("--log",), "log_file", help="log file"),
    Flag(("--log-format",), "log_format", default="text", help="text or json"),
    Flag(("--debug",), "debug", BOOL, False, help="log debug messages"),
    Flag(
        ("--systemd-cgroup",), "systemd_cgroup", BOOL, False, help="use systemd to manage cgroups"
    ),
    Flag(
        ("--criu",),
        "criu",
        help="CRIU binary for checkpoint/restore (default: criu on PATH)",
    ),
    Flag(("--rootless",), "rootless", help="ignore cgroup permission errors (true|false|auto)"),
)

ID = Arg("cid", help="container id")
BUNDLE = Flag(
    ("--bundle", "-b"), "bundle", default=".", help="bundle directory (config.json + rootfs)"
)
PID_FILE = Flag(("--pid-file",), "pid_file", help="write the init's pid here")
CONSOLE = Flag(("--console-socket",), "console_socket", help="unix socket for the pty master")
NO_PIVOT = Flag(("--no-pivot",), "no_pivot", BOOL, False, "MS_MOVE + chroot instead of pivot_root")
NO_KEYRING = Flag(
    ("--no-new-keyring",), "no_new_keyring", BOOL, False, "keep the caller's session keyring"
)
PRESERVE = Flag(
    ("--preserve-fds",), "preserve_fds", INT, 0, "pass fds 3..3+N-1 to the process", min=0
)
DETACH = Flag(("--detach", "-d"), "detach", BOOL, False, "do not wait for the process")
FORMAT = Flag(("--format", "-f"), "fmt", default="table", help="table or json")
UNSUPPORTED = "not supported (an error)"

# checkpoint and restore (CRIU)
IMAGE_PATH = Flag(
    ("--image-path",), "image_path", help="checkpoint image directory (default ./checkpoint)"
)
WORK_PATH = Flag(
    ("--work-path",),
    "work_path",
    help="directory for CRIU's log and work files (default: image path)",
)
TCP = Flag(("--tcp-established",), "tcp_established", BOOL, False, "allow open TCP connections")
EXT_UNIX = Flag(("--ext-unix-sk",), "ext_unix_sk", BOOL, False, "allow external unix sockets")
SHELL_JOB = Flag(("--shell-job",), "shell_job", BOOL, False, "allow shell jobs")
FILE_LOCKS = Flag(("--file-locks",), "file_locks", BOOL, False, "handle file locks")
CG_MODE = Flag(
    ("--manage-cgroups-mode",),
    "manage_cgroups_mode",
    help="cgroups mode: soft (default), full, strict or ignore",
)
EMPTY_NS = Flag(
    ("--empty-ns",),
    "empty_ns",
    help="namespace to leave empty (network): set up by the caller",
)
AUTO_DEDUP = Flag(("--auto-dedup",), "auto_dedup", BOOL, False, "deduplicate with parent images")
LAZY_PAGES = Flag(("--lazy-pages",), "lazy_pages", BOOL, False, UNSUPPORTED)


def _update_flags():
    flags = [
        Flag(
            ("--resources", "-r"),
            "resources_file",
            help="linux.resources JSON file, - for stdin",
        )
    ]
    for name, kind, help_ in (
        ("blkio-weight", INT, None),
        ("cpu-period", INT, None),
        ("cpu-quota", INT, None),
        ("cpu-burst", INT, None),
        ("cpu-idle", INT, "1: SCHED_IDLE"),
        ("cpu-share", INT, None),
        ("cpu-rt-period", INT, None),
        ("cpu-rt-runtime", INT, None),
        ("cpuset-cpus", STR, None),
        ("cpuset-mems", STR, None),
        ("memory", STR, "bytes or 100m, 1g ..."),
        ("memory-reservation", STR, None),
        ("memory-swap", STR, None),
        ("pids-limit", INT, None),
    ):
        flags.append(Flag((f"--{name}",), name.replace("-", "_"), kind, help=help_))
    for name in ("kernel-memory", "kernel-memory-tcp"):
        flags.append(Flag((f"--{name}",), name.replace("-", "_"), hidden=True))
    for name in ("l3-cache-schema", "mem-bw-schema"):
        flags.append(Flag((f"--{name}",), name.replace("-", "_"), help="Intel RDT: not supported"))
    return tuple(flags)


COMMANDS = {
    c.name: c
    for c in (
        Command(
            "create",
            "commands.create",
            "Create a container; its init waits for `start`.",
            (ID, BUNDLE, PID_FILE, CONSOLE, NO_PIVOT, NO_KEYRING, PRESERVE),
            hot=True,
        ),
        Command(
            "run",
            "commands.run",
            "Create and start a container; wait and exit with its exit code.",
            (
                ID,
                BUNDLE,
                PID_FILE,
                CONSOLE,
                DETACH,
                Flag(("--keep",), "keep", BOOL, False, "do not delete the container after exit"),
                Flag(("--no-subreaper",), "no_subreaper", BOOL, False, "accepted for runc compat"),
                NO_PIVOT,
                NO_KEYRING,
                PRESERVE,
            ),
            hot=True,
        ),
        Command(
            "start",
            "commands.start",
            "Start a created container: its init execs process.args.",
            (ID,),
            hot=True,
        ),
        Command("state", "commands.state", "Print the container's state as JSON.", (ID,), hot=True),
        Command(
            "kill",
            "commands.kill",
            "Send a signal (default TERM) to the container's init.",
            (
                ID,
                Arg("sig", default="TERM", metavar="[SIGNAL]"),
                Flag(("--all", "-a"), "all_", BOOL, False, "signal every process of the container"),
            ),
            hot=True,
        ),
        Command(
            "delete",
            "commands.delete",
            "Delete a container and everything it holds.",
            (ID, Flag(("--force", "-f"), "force", BOOL, False, "kill a running container first")),
            hot=True,
        ),
        Command(
            "exec",
            "commands.exec_",
            "Run a new process inside a running container.",
            (
                ID,
                Arg("args", STRS, None, "command and its arguments"),
                Flag(("--process", "-p"), "process_file", help="an OCI process JSON file"),
                Flag(("--tty", "-t"), "tty", BOOL, False, "allocate a pseudo-TTY"),
                Flag(("--user", "-u"), "user", help="UID[:GID]"),
                Flag(
                    ("--additional-gids", "-g"),
                    "additional_gids",
                    INTS,
                    help="additional gid (repeat)",
                ),
                Flag(("--cwd",), "cwd", help="working directory"),
                Flag(("--env", "-e"), "env", STRS, help="KEY=VALUE (repeat)"),
                Flag(("--cap", "-c"), "caps", STRS, help="add a capability"),
                Flag(("--no-new-privs",), "no_new_privs", BOOL, False, "set no_new_privs"),
                Flag(("--apparmor",), "apparmor", help="AppArmor profile"),
                Flag(("--process-label",), "process_label", help="SELinux label"),
                DETACH,
                PID_FILE,
                CONSOLE,
                PRESERVE,
                Flag(("--cgroup",), "cgroup", help=UNSUPPORTED),
                Flag(
                    ("--ignore-paused",),
                    "ignore_paused",
                    BOOL,
                    False,
                    "accepted for runc; a paused container refuses",
                ),
            ),
            hot=True,
            interspersed=False,
        ),
        Command("pause", "commands_ops.pause", "Freeze every process of the container.", (ID,)),
        Command("resume", "commands_ops.resume", "Thaw a paused container.", (ID,)),
        Command(
            "ps",
            "commands_ops.ps",
            "List the container's processes (json: an array of host pids).",
            (ID, Arg("ps_args", STRS, None, "options for ps(1), default -ef"), FORMAT),
            interspersed=False,
        ),
        Command(
            "update",
            "commands_ops.update",
            "Change a running container's resource limits.",
            (ID, *_update_flags()),
        ),
        Command(
            "events",
            "commands_ops.events",
            "Print the container's events (stats, oom) as JSON lines.",
            (
                ID,
                Flag(("--stats",), "stats", BOOL, False, "print one stats event and exit"),
                Flag(("--interval",), "interval", default="5s", help="time between stats events"),
            ),
        ),
        Command(
            "list",
            "commands.list_",
            "List containers.",
            (FORMAT, Flag(("--quiet", "-q"), "quiet", BOOL, False, "only ids")),
            hot=True,
        ),
        Command(
            "spec",
            "commands_tools.spec",
            "Write a default config.json into the bundle.",
            (
                Flag(("--bundle", "-b"), "bundle", default=".", help="where to write config.json"),
                Flag(("--rootless",), "rootless", BOOL, False, "a config for rootless use"),
            ),
        ),
        Command(
            "features",
            "commands_tools.features",
            "Print what this runtime supports (runtime-spec features.json).",
        ),
        Command(
            "gc",
            "commands_tools.gc",
            "Remove what crashed or killed runtimes left: dead containers' state dirs, their\n"
            "cgroups, stale fifos and temporaries, cache leftovers (runc has no such command).",
            (Flag(("--dry-run",), "dry_run", BOOL, False, "only print what would be removed"),),
        ),
        Command(
            "checkpoint",
            "commands_tools.checkpoint",
            "Checkpoint a running container with CRIU (it is gone afterwards unless\n"
            "--leave-running).",
            (
                ID,
                IMAGE_PATH,
                WORK_PATH,
                Flag(
                    ("--parent-path",),
                    "parent_path",
                    help="previous pre-dump, relative to image path",
                ),
                Flag(
                    ("--leave-running",),
                    "leave_running",
                    BOOL,
                    False,
                    "leave the process running afterwards",
                ),
                TCP,
                EXT_UNIX,
                SHELL_JOB,
                LAZY_PAGES,
                Flag(("--status-fd",), "status_fd", help="not supported"),
                Flag(("--page-server",), "page_server", help="not supported"),
                FILE_LOCKS,
                Flag(("--pre-dump",), "pre_dump", BOOL, False, "dump memory only, keep running"),
                CG_MODE,
                EMPTY_NS,
                AUTO_DEDUP,
            ),
        ),
        Command(
            "restore",
            "commands_tools.restore",
            "Restore a container from a CRIU checkpoint, with the bundle's config.",
            (
                ID,
                IMAGE_PATH,
                WORK_PATH,
                BUNDLE,
                DETACH,
                PID_FILE,
                CONSOLE,
                Flag(
                    ("--no-subreaper",),
                    "no_subreaper",
                    BOOL,
                    False,
                    "do not become the restored tree's subreaper",
                ),
                NO_PIVOT,
                TCP,
                EXT_UNIX,
                SHELL_JOB,
                FILE_LOCKS,
                CG_MODE,
                EMPTY_NS,
                AUTO_DEDUP,
                LAZY_PAGES,
            ),
        ),
    )
}


# Go's strconv.ParseBool, which runc's boolean flags use for `--flag=value`.
GO_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}


def go_name(name: str, known) -> str | None:
    """The name under which `known` lists option `name`, as Go's flag package matches it:
    one or two leading dashes alike (`-root` is `--root`, `--b` is `-b`)."""
    if name in known:
        return name
    if name.startswith("--"):
        alt = name[1:]
    elif name.startswith("-") and len(name) > 2:
        alt = "-" + name
    else:
        return None
    return alt if alt in known else None
