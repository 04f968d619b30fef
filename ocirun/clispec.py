"""runc's command line, declared once: the global flags, and each command's flags,
arguments and body, as data. A command is declared by a function that returns its flags
and arguments (its docstring is the command's help), called only when that command is
parsed or the typer app is built: a create builds create's flags alone.

Two parsers are built from it: the typer app (cli.py: help, full error messages, every
command) and the hot commands' parser (_lean.py: what engines send, without
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
    `hot`: parsed by _lean.py (engines send it per container). `interspersed`:
    False where options end at the first argument (runc's SkipArgReorder: exec, ps)."""

    __slots__ = ("name", "body", "help", "hot", "interspersed", "_declare", "_params")

    def __init__(self, name, body, declare, hot=False, interspersed=True):
        self.name = name
        self.body = body
        self.help = declare.__doc__
        self.hot = hot
        self.interspersed = interspersed
        self._declare = declare
        self._params = None

    @property
    def params(self) -> tuple:
        """The flags and arguments, in the order of the help; built when first asked for
        (a create builds only create's)."""
        if self._params is None:
            self._params = self._declare()
        return self._params

    def flags(self) -> list[Flag]:
        return [p for p in self.params if isinstance(p, Flag)]

    def args(self) -> list[Arg]:
        return [p for p in self.params if isinstance(p, Arg)]

    def function(self):
        """The body, its module imported now (each command imports only its own)."""
        module, _, name = self.body.rpartition(".")
        return getattr(__import__(f"ocirun.{module}", fromlist=[name]), name)


# The global flags: the keywords of commands.Globals. (--version/-v, a flag of the typer
# app alone, prints the version: cli.py; _lean.py answers `ocirun --version` too.)
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
        ("--cgroup-manager",),
        "cgroup_manager",
        help="crun's spelling: cgroupfs (the default) or systemd (= --systemd-cgroup)",
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
CONFIG = Flag(
    ("--config",),
    "config",
    default="config.json",
    help="crun's: the config file to use, relative to the bundle",
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


COMMANDS: dict[str, Command] = {}


def command(name, body, hot=False, interspersed=True):
    """Declare a command: the decorated function returns its flags and arguments, and its
    docstring is the command's help."""

    def declare(params):
        COMMANDS[name] = Command(name, body, params, hot, interspersed)
        return params

    return declare


@command("create", "commands.create", hot=True)
def create():
    """Create a container; its init waits for `start`."""
    return (ID, BUNDLE, CONFIG, PID_FILE, CONSOLE, NO_PIVOT, NO_KEYRING, PRESERVE)


@command("run", "commands.run", hot=True)
def run():
    """Create and start a container; wait and exit with its exit code."""
    return (
        ID,
        BUNDLE,
        CONFIG,
        PID_FILE,
        CONSOLE,
        DETACH,
        Flag(("--keep",), "keep", BOOL, False, "do not delete the container after exit"),
        Flag(("--no-subreaper",), "no_subreaper", BOOL, False, "accepted for runc compat"),
        NO_PIVOT,
        NO_KEYRING,
        PRESERVE,
    )


@command("start", "commands.start", hot=True)
def start():
    """Start a created container: its init execs process.args."""
    return (ID,)


@command("state", "commands.state", hot=True)
def state():
    """Print the container's state as JSON."""
    return (ID,)


@command("kill", "commands.kill", hot=True)
def kill():
    """Send a signal (default TERM) to the container's init."""
    return (
        ID,
        Arg("sig", default="TERM", metavar="[SIGNAL]"),
        Flag(("--all", "-a"), "all_", BOOL, False, "signal every process of the container"),
    )


@command("delete", "commands.delete", hot=True)
def delete():
    """Delete a container and everything it holds."""
    return (ID, Flag(("--force", "-f"), "force", BOOL, False, "kill a running container first"))


@command("exec", "commands.exec_", hot=True, interspersed=False)
def exec_():
    """Run a new process inside a running container."""
    return (
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
    )


@command("pause", "commands_ops.pause")
def pause():
    """Freeze every process of the container."""
    return (ID,)


@command("resume", "commands_ops.resume")
def resume():
    """Thaw a paused container."""
    return (ID,)


@command("ps", "commands_ops.ps", interspersed=False)
def ps():
    """List the container's processes (json: an array of host pids)."""
    return (ID, Arg("ps_args", STRS, None, "options for ps(1), default -ef"), FORMAT)


@command("update", "commands_ops.update")
def update():
    """Change a running container's resource limits."""
    return (ID, *_update_flags())


@command("events", "commands_ops.events")
def events():
    """Print the container's events (stats, oom) as JSON lines."""
    return (
        ID,
        Flag(("--stats",), "stats", BOOL, False, "print one stats event and exit"),
        Flag(("--interval",), "interval", default="5s", help="time between stats events"),
    )


@command("list", "commands.list_", hot=True)
def list_():
    """List containers."""
    return (FORMAT, Flag(("--quiet", "-q"), "quiet", BOOL, False, "only ids"))


@command("spec", "commands_tools.spec")
def spec():
    """Write a default config.json into the bundle."""
    return (
        Flag(("--bundle", "-b"), "bundle", default=".", help="where to write config.json"),
        Flag(("--rootless",), "rootless", BOOL, False, "a config for rootless use"),
    )


@command("features", "commands_tools.features")
def features():
    """Print what this runtime supports (runtime-spec features.json)."""
    return ()


@command("gc", "commands_tools.gc")
def gc():
    """Remove what crashed or killed runtimes left: dead containers' state dirs, their
    cgroups, stale fifos and temporaries, cache leftovers (runc has no such command)."""
    return (Flag(("--dry-run",), "dry_run", BOOL, False, "only print what would be removed"),)


@command("checkpoint", "commands_tools.checkpoint")
def checkpoint():
    """Checkpoint a running container with CRIU (it is gone afterwards unless
    --leave-running)."""
    return (
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
    )


@command("restore", "commands_tools.restore")
def restore():
    """Restore a container from a CRIU checkpoint, with the bundle's config."""
    return (
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
    )


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
