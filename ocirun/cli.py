"""The command line (typer): runc's commands and flags, with help and full error messages.

The hot commands usually never get here: fastcli.py parses what engines send and calls the
same bodies in commands.py. Everything else — help, the cold commands, any command line the
fast parser does not fully understand — is handled by this typer app.
"""

from __future__ import annotations

import typer

from . import commands
from .errors import OcirunError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="ocirun: an OCI container runtime, a drop-in for runc.",
)


class _State:
    g: commands.Globals | None = None


S = _State()


def _version(value: bool) -> None:
    if value:
        print(commands.version_text(_criu_flag()))
        raise typer.Exit()


def _criu_flag() -> str | None:
    """--criu's value for --version, which click handles before any other global flag."""
    import sys

    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name in ("--criu", "-criu"):
            return value if eq else (argv[i + 1] if i + 1 < len(argv) else None)
        if not arg.startswith("-"):
            break
    return None


@app.callback()
def main_options(
    root: str | None = typer.Option(
        None,
        "--root",
        help="state directory (default /run/ocirun; for a non-root user $XDG_RUNTIME_DIR/ocirun)",
    ),
    log_file: str | None = typer.Option(None, "--log", help="log file"),
    log_format: str = typer.Option("text", "--log-format", help="text or json"),
    debug: bool = typer.Option(False, "--debug", help="log debug messages"),
    systemd_cgroup: bool = typer.Option(
        False, "--systemd-cgroup", help="use systemd to manage cgroups"
    ),
    criu: str | None = typer.Option(
        None, "--criu", help="CRIU binary for checkpoint/restore (default: criu on PATH)"
    ),
    rootless: str | None = typer.Option(
        None, "--rootless", help="ignore cgroup permission errors (true|false|auto)"
    ),
    version: bool = typer.Option(
        False, "--version", "-v", callback=_version, is_eager=True, help="print the version"
    ),
) -> None:
    try:
        S.g = commands.Globals(root, log_file, log_format, debug, systemd_cgroup, criu, rootless)
    except OcirunError as e:
        raise typer.Exit(commands.report(e)) from None


def done(code: int) -> None:
    raise typer.Exit(code)


ID = typer.Argument(..., help="container id")
BUNDLE = typer.Option(".", "--bundle", "-b", help="bundle directory (config.json + rootfs)")
PID_FILE = typer.Option(None, "--pid-file", help="write the init's pid here")
CONSOLE = typer.Option(None, "--console-socket", help="unix socket for the pty master")
NO_PIVOT = typer.Option(False, "--no-pivot", help="MS_MOVE + chroot instead of pivot_root")
NO_KEYRING = typer.Option(False, "--no-new-keyring", help="keep the caller's session keyring")
PRESERVE = typer.Option(0, "--preserve-fds", min=0, help="pass fds 3..3+N-1 to the process")


@app.command()
def create(
    cid: str = ID,
    bundle: str = BUNDLE,
    pid_file: str | None = PID_FILE,
    console_socket: str | None = CONSOLE,
    no_pivot: bool = NO_PIVOT,
    no_new_keyring: bool = NO_KEYRING,
    preserve_fds: int = PRESERVE,
) -> None:
    """Create a container; its init waits for `start`."""
    done(
        commands.create(
            S.g,
            cid,
            bundle=bundle,
            pid_file=pid_file,
            console_socket=console_socket,
            no_pivot=no_pivot,
            no_new_keyring=no_new_keyring,
            preserve_fds=preserve_fds,
        )
    )


@app.command()
def run(
    cid: str = ID,
    bundle: str = BUNDLE,
    pid_file: str | None = PID_FILE,
    console_socket: str | None = CONSOLE,
    detach: bool = typer.Option(False, "--detach", "-d", help="do not wait for the process"),
    keep: bool = typer.Option(False, "--keep", help="do not delete the container after exit"),
    no_subreaper: bool = typer.Option(False, "--no-subreaper", help="accepted for runc compat"),
    no_pivot: bool = NO_PIVOT,
    no_new_keyring: bool = NO_KEYRING,
    preserve_fds: int = PRESERVE,
) -> None:
    """Create and start a container; wait and exit with its exit code."""
    done(
        commands.run(
            S.g,
            cid,
            detach=detach,
            keep=keep,
            no_subreaper=no_subreaper,
            bundle=bundle,
            pid_file=pid_file,
            console_socket=console_socket,
            no_pivot=no_pivot,
            no_new_keyring=no_new_keyring,
            preserve_fds=preserve_fds,
        )
    )


@app.command()
def start(cid: str = ID) -> None:
    """Start a created container: its init execs process.args."""
    done(commands.start(S.g, cid))


@app.command()
def state(cid: str = ID) -> None:
    """Print the container's state as JSON."""
    done(commands.state(S.g, cid))


@app.command()
def kill(
    cid: str = ID,
    sig: str = typer.Argument("TERM", metavar="[SIGNAL]"),
    all_: bool = typer.Option(False, "--all", "-a", help="signal every process of the container"),
) -> None:
    """Send a signal (default TERM) to the container's init."""
    done(commands.kill(S.g, cid, sig, all_))


@app.command()
def delete(
    cid: str = ID,
    force: bool = typer.Option(False, "--force", "-f", help="kill a running container first"),
) -> None:
    """Delete a container and everything it holds."""
    done(commands.delete(S.g, cid, force))


@app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_(
    cid: str = ID,
    args: list[str] | None = typer.Argument(None, help="command and its arguments"),
    process_file: str | None = typer.Option(
        None, "--process", "-p", help="an OCI process JSON file"
    ),
    tty: bool = typer.Option(False, "--tty", "-t", help="allocate a pseudo-TTY"),
    user: str | None = typer.Option(None, "--user", "-u", help="UID[:GID]"),
    additional_gids: list[int] | None = typer.Option(
        None, "--additional-gids", "-g", help="additional gid (repeat)"
    ),
    cwd: str | None = typer.Option(None, "--cwd", help="working directory"),
    env: list[str] | None = typer.Option(None, "--env", "-e", help="KEY=VALUE (repeat)"),
    caps: list[str] | None = typer.Option(None, "--cap", "-c", help="add a capability"),
    no_new_privs: bool = typer.Option(False, "--no-new-privs", help="set no_new_privs"),
    apparmor: str | None = typer.Option(None, "--apparmor", help="AppArmor profile"),
    process_label: str | None = typer.Option(None, "--process-label", help="SELinux label"),
    detach: bool = typer.Option(False, "--detach", "-d", help="do not wait for the process"),
    pid_file: str | None = PID_FILE,
    console_socket: str | None = CONSOLE,
    preserve_fds: int = PRESERVE,
    cgroup: str | None = typer.Option(None, "--cgroup", help="not supported (an error)"),
    ignore_paused: bool = typer.Option(
        False, "--ignore-paused", help="accepted for runc; a paused container refuses"
    ),
) -> None:
    """Run a new process inside a running container."""
    done(
        commands.exec_(
            S.g,
            cid,
            args=args,
            process_file=process_file,
            tty=tty,
            user=user,
            additional_gids=additional_gids,
            cwd=cwd,
            env=env,
            caps=caps,
            no_new_privs=no_new_privs,
            apparmor=apparmor,
            process_label=process_label,
            detach=detach,
            pid_file=pid_file,
            console_socket=console_socket,
            preserve_fds=preserve_fds,
            cgroup=cgroup,
            ignore_paused=ignore_paused,
        )
    )


@app.command()
def pause(cid: str = ID) -> None:
    """Freeze every process of the container."""
    done(commands.pause(S.g, cid))


@app.command()
def resume(cid: str = ID) -> None:
    """Thaw a paused container."""
    done(commands.resume(S.g, cid))


@app.command(context_settings={"allow_interspersed_args": False})
def ps(
    cid: str = ID,
    ps_args: list[str] | None = typer.Argument(None, help="options for ps(1), default -ef"),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json"),
) -> None:
    """List the container's processes (json: an array of host pids)."""
    done(commands.ps(S.g, cid, fmt, ps_args))


@app.command()
def update(
    cid: str = ID,
    resources_file: str | None = typer.Option(
        None, "--resources", "-r", help="linux.resources JSON file, - for stdin"
    ),
    blkio_weight: int | None = typer.Option(None, "--blkio-weight"),
    cpu_period: int | None = typer.Option(None, "--cpu-period"),
    cpu_quota: int | None = typer.Option(None, "--cpu-quota"),
    cpu_burst: int | None = typer.Option(None, "--cpu-burst"),
    cpu_idle: int | None = typer.Option(None, "--cpu-idle", help="1: SCHED_IDLE"),
    cpu_share: int | None = typer.Option(None, "--cpu-share"),
    cpu_rt_period: int | None = typer.Option(None, "--cpu-rt-period"),
    cpu_rt_runtime: int | None = typer.Option(None, "--cpu-rt-runtime"),
    cpuset_cpus: str | None = typer.Option(None, "--cpuset-cpus"),
    cpuset_mems: str | None = typer.Option(None, "--cpuset-mems"),
    memory: str | None = typer.Option(None, "--memory", help="bytes or 100m, 1g ..."),
    memory_reservation: str | None = typer.Option(None, "--memory-reservation"),
    memory_swap: str | None = typer.Option(None, "--memory-swap"),
    pids_limit: int | None = typer.Option(None, "--pids-limit"),
    kernel_memory: str | None = typer.Option(None, "--kernel-memory", hidden=True),
    kernel_memory_tcp: str | None = typer.Option(None, "--kernel-memory-tcp", hidden=True),
    l3_cache_schema: str | None = typer.Option(
        None, "--l3-cache-schema", help="Intel RDT: not supported"
    ),
    mem_bw_schema: str | None = typer.Option(
        None, "--mem-bw-schema", help="Intel RDT: not supported"
    ),
) -> None:
    """Change a running container's resource limits."""
    done(
        commands.update(
            S.g,
            cid,
            resources_file,
            blkio_weight=blkio_weight,
            cpu_period=cpu_period,
            cpu_quota=cpu_quota,
            cpu_burst=cpu_burst,
            cpu_idle=cpu_idle,
            cpu_share=cpu_share,
            cpu_rt_period=cpu_rt_period,
            cpu_rt_runtime=cpu_rt_runtime,
            cpuset_cpus=cpuset_cpus,
            cpuset_mems=cpuset_mems,
            memory=memory,
            memory_reservation=memory_reservation,
            memory_swap=memory_swap,
            pids_limit=pids_limit,
            kernel_memory=kernel_memory,
            kernel_memory_tcp=kernel_memory_tcp,
            l3_cache_schema=l3_cache_schema,
            mem_bw_schema=mem_bw_schema,
        )
    )


@app.command()
def events(
    cid: str = ID,
    stats: bool = typer.Option(False, "--stats", help="print one stats event and exit"),
    interval: str = typer.Option("5s", "--interval", help="time between stats events"),
) -> None:
    """Print the container's events (stats, oom) as JSON lines."""
    done(commands.events(S.g, cid, stats, interval))


@app.command("list")
def list_(
    fmt: str = typer.Option("table", "--format", "-f", help="table or json"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="only ids"),
) -> None:
    """List containers."""
    done(commands.list_(S.g, fmt, quiet))


@app.command()
def spec(
    bundle: str = typer.Option(".", "--bundle", "-b", help="where to write config.json"),
    rootless: bool = typer.Option(False, "--rootless", help="a config for rootless use"),
) -> None:
    """Write a default config.json into the bundle."""
    done(commands.spec(S.g, bundle, rootless))


@app.command()
def features() -> None:
    """Print what this runtime supports (runtime-spec features.json)."""
    done(commands.features(S.g))


@app.command()
def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="only print what would be removed"),
) -> None:
    """Remove what crashed or killed runtimes left: dead containers' state dirs, their
    cgroups, stale fifos and temporaries, cache leftovers (runc has no such command)."""
    done(commands.gc(S.g, dry_run))


IMAGE_PATH = typer.Option(
    None, "--image-path", help="checkpoint image directory (default ./checkpoint)"
)
WORK_PATH = typer.Option(
    None, "--work-path", help="directory for CRIU's log and work files (default: image path)"
)
TCP = typer.Option(False, "--tcp-established", help="allow open TCP connections")
EXT_UNIX = typer.Option(False, "--ext-unix-sk", help="allow external unix sockets")
SHELL_JOB = typer.Option(False, "--shell-job", help="allow shell jobs")
FILE_LOCKS = typer.Option(False, "--file-locks", help="handle file locks")
CG_MODE = typer.Option(
    None, "--manage-cgroups-mode", help="cgroups mode: soft (default), full, strict or ignore"
)
EMPTY_NS = typer.Option(
    None, "--empty-ns", help="namespace to leave empty (network): set up by the caller"
)
AUTO_DEDUP = typer.Option(False, "--auto-dedup", help="deduplicate with parent images")


@app.command()
def checkpoint(
    cid: str = ID,
    image_path: str | None = IMAGE_PATH,
    work_path: str | None = WORK_PATH,
    parent_path: str | None = typer.Option(
        None, "--parent-path", help="previous pre-dump, relative to image path"
    ),
    leave_running: bool = typer.Option(
        False, "--leave-running", help="leave the process running afterwards"
    ),
    tcp_established: bool = TCP,
    ext_unix_sk: bool = EXT_UNIX,
    shell_job: bool = SHELL_JOB,
    lazy_pages: bool = typer.Option(False, "--lazy-pages", help="not supported (an error)"),
    status_fd: str | None = typer.Option(None, "--status-fd", help="not supported"),
    page_server: str | None = typer.Option(None, "--page-server", help="not supported"),
    file_locks: bool = FILE_LOCKS,
    pre_dump: bool = typer.Option(False, "--pre-dump", help="dump memory only, keep running"),
    manage_cgroups_mode: str | None = CG_MODE,
    empty_ns: str | None = EMPTY_NS,
    auto_dedup: bool = AUTO_DEDUP,
) -> None:
    """Checkpoint a running container with CRIU (it is gone afterwards unless
    --leave-running)."""
    for flag, value in (
        ("--lazy-pages", lazy_pages),
        ("--status-fd", status_fd),
        ("--page-server", page_server),
    ):
        if value:
            done(
                commands.report(
                    commands.OcirunError(f"checkpoint {flag} is not supported by ocirun")
                )
            )
    done(
        commands.checkpoint(
            S.g,
            cid,
            image_path=image_path,
            work_path=work_path,
            parent_path=parent_path,
            leave_running=leave_running,
            tcp_established=tcp_established,
            ext_unix_sk=ext_unix_sk,
            shell_job=shell_job,
            file_locks=file_locks,
            pre_dump=pre_dump,
            manage_cgroups_mode=manage_cgroups_mode,
            empty_ns=empty_ns,
            auto_dedup=auto_dedup,
        )
    )


@app.command()
def restore(
    cid: str = ID,
    image_path: str | None = IMAGE_PATH,
    work_path: str | None = WORK_PATH,
    bundle: str = BUNDLE,
    detach: bool = typer.Option(False, "--detach", "-d", help="do not wait for the process"),
    pid_file: str | None = PID_FILE,
    console_socket: str | None = CONSOLE,
    no_subreaper: bool = typer.Option(
        False, "--no-subreaper", help="do not become the restored tree's subreaper"
    ),
    no_pivot: bool = NO_PIVOT,
    tcp_established: bool = TCP,
    ext_unix_sk: bool = EXT_UNIX,
    shell_job: bool = SHELL_JOB,
    file_locks: bool = FILE_LOCKS,
    manage_cgroups_mode: str | None = CG_MODE,
    empty_ns: str | None = EMPTY_NS,
    auto_dedup: bool = AUTO_DEDUP,
    lazy_pages: bool = typer.Option(False, "--lazy-pages", help="not supported (an error)"),
) -> None:
    """Restore a container from a CRIU checkpoint, with the bundle's config."""
    if lazy_pages:
        done(
            commands.report(commands.OcirunError("restore --lazy-pages is not supported by ocirun"))
        )
    done(
        commands.restore(
            S.g,
            cid,
            image_path=image_path,
            work_path=work_path,
            bundle=bundle,
            detach=detach,
            pid_file=pid_file,
            console_socket=console_socket,
            no_subreaper=no_subreaper,
            no_pivot=no_pivot,
            tcp_established=tcp_established,
            ext_unix_sk=ext_unix_sk,
            shell_job=shell_job,
            file_locks=file_locks,
            manage_cgroups_mode=manage_cgroups_mode,
            empty_ns=empty_ns,
            auto_dedup=auto_dedup,
        )
    )


@app.command("help")
def help_(topic: list[str] | None = typer.Argument(None, help="a command")) -> None:
    """Show the commands, or one command's help (as `ocirun COMMAND --help`)."""
    app(args=[*(topic or [])[:1], "--help"], prog_name="ocirun")


app.command("h", hidden=True)(help_)


# ----------------------------------------------------------------- runc's flag syntax


def go_style(argv: list[str], group) -> list[str]:
    """argv as click wants it, from what runc's Go flag parser accepts: `-root` and `--b`
    (one dash or two, whatever the name's length) become the option's long name, and a
    boolean given a value (`--detach=true`, `-d=0`) becomes the bare flag or nothing.
    Options end at `--`, and at the first argument of a command that takes no options
    after its arguments (exec, ps: runc's SkipArgReorder). Anything else is left alone,
    for click to report. fastcli._take reads the same syntax for the hot commands."""
    from .fastcli import GO_BOOLS, go_name

    out: list[str] = []
    scope = group
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            out += argv[i - 1 :]
            break
        if not arg.startswith("-") or arg == "-":
            out.append(arg)
            if scope is group:  # the command's name
                scope = group.commands.get(arg)
                if scope is None:
                    out += argv[i:]
                    break
            elif not scope.context_settings.get("allow_interspersed_args", True):
                out += argv[i:]
                break
            continue
        name, eq, value = arg.partition("=")
        names = {o: p for p in scope.params if p.param_type_name == "option" for o in p.opts}
        found = go_name(name, names)
        if found is None:
            out.append("--help" if go_name(name, ("-h", "--help")) and not eq else arg)
            continue
        param = names[found]
        canonical = max(param.opts, key=len)
        if param.is_flag:
            if not eq:
                out.append(canonical)
            elif value in GO_BOOLS:
                out += [canonical] if GO_BOOLS[value] else []
            else:
                out.append(arg)  # click: "does not take a value"
        elif eq:
            out.append(f"{canonical}={value}")
        elif i < len(argv):  # the value, whatever it looks like (`--cpu-quota -1`)
            out.append(f"{canonical}={argv[i]}")
            i += 1
        else:
            out.append(canonical)  # click: "requires an argument"
    return out


def main(argv: list[str] | None = None) -> None:
    import sys

    import typer.main

    argv = sys.argv[1:] if argv is None else argv
    group = typer.main.get_command(app)
    try:
        code = group.main(args=go_style(argv, group), prog_name="ocirun", standalone_mode=False)
    except typer.TyperException as e:  # click's usage errors: one line, not a usage page
        code = getattr(e, "exit_code", 1)
        if not hasattr(e, "format_message"):
            raise
        if type(e).__name__ == "NoArgsIsHelpError":  # `ocirun` alone: the help, as runc
            e.show()
            sys.exit(code)
        ctx = getattr(e, "ctx", None)
        where = ctx.command_path if ctx is not None else "ocirun"
        print(f"{where}: {e.format_message()} (see {where} --help)", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)
