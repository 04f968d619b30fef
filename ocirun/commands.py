"""The bodies of the commands, shared by both front ends: the typer CLI (cli.py) and the
argv fast path for the hot commands (fastcli.py). The one place that prints.

Each function takes parsed arguments, does the work through `container`, `lifecycle` or
`execute`, prints the result and returns the exit code. An OcirunError becomes one
message on stderr (and in --log): never a traceback for a user error.
"""

import sys

from . import fastjson as json
from . import log
from .errors import OcirunError, UsageError
from .paths import abspath


class Globals:
    """The global flags, given before the command (`--root R --log F create ...`)."""

    def __init__(
        self,
        root: str | None = None,
        log_file: str | None = None,
        log_format: str = "text",
        debug: bool = False,
        systemd_cgroup: bool = False,
        criu: str | None = None,
        rootless: str | None = None,
    ):
        if log_format not in ("text", "json"):
            raise UsageError(f"invalid log format {log_format!r}: use text or json")
        if root is None:  # runc's rule: $XDG_RUNTIME_DIR/ocirun for a non-root caller
            from .rootless import default_root

            root = default_root()
        try:
            self.root = abspath(root)
        except OSError as e:  # a relative --root in a deleted cwd
            raise OcirunError(f"root {root}: {e.strerror or e}") from None
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless
        self.criu = criu  # checkpoint/restore: CRIU's path, else `criu` on PATH
        log.configure(log_file, log_format, debug)
        # runc's flags that mean nothing here (docs/compat.md): accepted, said in --debug.

    def rootless_cgroups(self) -> bool:
        """runc reads --rootless (auto or a Go boolean) only where it creates a container,
        and refuses a bad value there: whether cgroups the caller cannot write are skipped
        (see rootless.rootless_cgroups)."""
        from .fastcli import GO_BOOLS
        from .rootless import rootless_cgroups

        value = self.rootless
        if value is not None and value.lower() not in ("", "auto") and value not in GO_BOOLS:
            raise UsageError(f"invalid --rootless value {value!r}: use true, false or auto")
        return rootless_cgroups(value, self.systemd_cgroup)


def ignored(flag: str, value, why: str) -> None:
    """A runc flag ocirun accepts and ignores: one debug line in the log."""
    shown = flag if value is True else f"{flag} {value}"
    log.debug(f"ignoring {shown}: {why}")


def report(err: OcirunError) -> int:
    """The error on one line of stderr (and in the log): a newline in it (from a path, an
    id, an exception's text) is shown escaped, as the log's text format does."""
    log.error(err.message)
    text = err.message
    if "\n" in text or "\r" in text:
        text = text.replace("\r", "\\r").replace("\n", "\\n")
    print(text, file=sys.stderr)
    return err.exit_code


def unexpected(e: BaseException) -> OcirunError:
    """An exception no code path meant (a bug, a host unlike any foreseen) as one line that
    says where it came from; the whole traceback goes to the log with --debug."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = ""
    if tb is not None:
        code = tb.tb_frame.f_code
        where = f" in {code.co_name} ({code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno})"
    if log.enabled():
        import traceback

        log.debug("".join(traceback.format_exception(e)).rstrip())
    return OcirunError(f"unexpected error{where}: {type(e).__name__}: {e}")


def guarded(fn):
    """Run fn() -> exit code; a user error is reported, not raised, and so is anything
    else: never a traceback."""
    try:
        return fn() or 0
    except OcirunError as e:
        return report(e)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        return report(unexpected(e))


def _create_options(
    g: Globals,
    bundle=".",
    pid_file=None,
    console_socket=None,
    no_pivot=False,
    no_new_keyring=False,
    preserve_fds=0,
):
    from .container import CreateOptions

    return CreateOptions(
        bundle=bundle,
        pid_file=pid_file,
        console_socket=console_socket,
        no_pivot=no_pivot,
        no_new_keyring=no_new_keyring,
        preserve_fds=int(preserve_fds),
        systemd_cgroup=g.systemd_cgroup,
        rootless_cgroups=g.rootless_cgroups(),
    )


def create(g: Globals, cid: str, **opts) -> int:
    from . import container

    def go():
        container.create(g.root, cid, _create_options(g, **opts))

    return guarded(go)


def run(
    g: Globals,
    cid: str,
    detach: bool = False,
    keep: bool = False,
    no_subreaper: bool = False,
    **opts,
) -> int:
    from . import container

    def go():
        if no_subreaper:
            ignored("--no-subreaper", True, "run waits for the init, which may be a grandchild")
        return container.run(g.root, cid, _create_options(g, **opts), detach=detach, keep=keep)

    return guarded(go)


def start(g: Globals, cid: str) -> int:
    from . import lifecycle

    return guarded(lambda: lifecycle.start(g.root, cid))


def state(g: Globals, cid: str) -> int:
    from . import lifecycle

    def go():
        print(json.dumps(lifecycle.state(g.root, cid), indent=2))

    return guarded(go)


def parse_signal(text: str) -> int:
    """A signal by number, name (TERM, SIGTERM) or RTMIN+n / RTMAX-n, as runc takes it."""
    from .tables import SIGNALS, SIGRTMAX, SIGRTMIN

    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 <= n <= SIGRTMAX:  # 0: only checks that the init is alive, as runc allows
            return n
    else:
        name = t if t.startswith("SIG") else "SIG" + t
        if name in SIGNALS:
            return SIGNALS[name]
        for base, limit in (("SIGRTMIN", SIGRTMIN), ("SIGRTMAX", SIGRTMAX)):
            if name == base:
                return limit
            if (
                name.startswith(base)
                and name[len(base)] in "+-"
                and name[len(base) + 1 :].isdigit()
            ):
                n = limit + int(name[len(base) :])
                if SIGRTMIN <= n <= SIGRTMAX:
                    return n
    raise UsageError(f"invalid signal: {text}")


def kill(g: Globals, cid: str, sig: str = "TERM", all_: bool = False) -> int:
    from . import lifecycle

    def go():
        signum = parse_signal(sig)
        if all_:
            lifecycle.kill_all(g.root, cid, signum)
        else:
            lifecycle.kill(g.root, cid, signum)

    return guarded(go)


def delete(g: Globals, cid: str, force: bool = False) -> int:
    from . import lifecycle

    return guarded(lambda: lifecycle.delete(g.root, cid, force))


def exec_(
    g: Globals,
    cid: str,
    args: list[str] | None = None,
    apparmor: str | None = None,
    process_label: str | None = None,
    cgroup: str | None = None,
    ignore_paused: bool = False,
    **opts,
) -> int:
    from . import execute
    from .container import check_lsm

    def go():
        if cgroup is not None:
            # Ignoring it would leave the process outside the sub-cgroup asked for.
            raise OcirunError(
                "exec --cgroup is not supported: the process joins the container's own cgroup"
            )
        if ignore_paused:
            ignored("--ignore-paused", True, "exec in a paused container is refused anyway")
        check_lsm({"apparmorProfile": apparmor, "selinuxLabel": process_label})
        return execute.exec_(g.root, cid, execute.ExecOptions(args=args, **opts))

    return guarded(go)


def warn(msg: str) -> None:
    """A problem that does not stop the command: on stderr and in the log."""
    log.warning(msg)
    print(msg, file=sys.stderr)


def _list_states(root: str) -> list[dict]:
    """Every container's state; one we may not read is skipped with a warning (as runc)."""
    from . import state as statemod

    states = []
    for cid in statemod.list_ids(root):
        try:
            st = statemod.peek(root, cid)
        except OcirunError as e:
            warn(e.message)
            continue
        if st is not None:
            states.append(st)
    return states


def pause(g: Globals, cid: str) -> int:
    from . import lifecycle

    return guarded(lambda: lifecycle.pause(g.root, cid))


def resume(g: Globals, cid: str) -> int:
    from . import lifecycle

    return guarded(lambda: lifecycle.resume(g.root, cid))


def ps(g: Globals, cid: str, fmt: str = "table", ps_args: list[str] | None = None) -> int:
    """json: only the array of host pids (containerd parses stdout alone); table: `ps`
    output (with ps_args, default -ef) limited to the container's processes."""
    from . import lifecycle

    def go():
        if fmt not in ("table", "json"):
            raise UsageError(f"invalid format {fmt!r}: use table or json")
        pids = lifecycle.pids(g.root, cid)
        if fmt == "json":
            print(json.dumps(pids))
            return 0
        import subprocess

        try:
            out = subprocess.run(
                ["ps", *(ps_args or ["-ef"])], capture_output=True, text=True, check=True
            ).stdout.splitlines()
        except (OSError, subprocess.CalledProcessError) as e:
            raise OcirunError(f"ps: {e}") from None
        if not out:
            return 0
        header = out[0].split()
        if "PID" not in header:
            raise OcirunError("ps output has no PID column")
        col = header.index("PID")
        print(out[0])
        wanted = set(pids)
        for line in out[1:]:
            fields = line.split()
            if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
                print(line)
        return 0

    return guarded(go)


def update(
    g: Globals,
    cid: str,
    resources_file: str | None = None,
    kernel_memory: str | None = None,
    kernel_memory_tcp: str | None = None,
    l3_cache_schema: str | None = None,
    mem_bw_schema: str | None = None,
    **flags,
) -> int:
    """runc's update: --resources FILE ('-' = stdin, as containerd sends it) and/or flags."""
    from . import lifecycle

    def go():
        # runc's own words where Intel RDT is not enabled: ocirun never enables it.
        if l3_cache_schema:
            raise OcirunError("Intel RDT/CAT: l3 cache schema is not enabled")
        if mem_bw_schema:
            raise OcirunError("Intel RDT/MBA: memory bandwidth schema is not enabled")
        obsolete = False
        for flag, value in (
            ("--kernel-memory", kernel_memory),
            ("--kernel-memory-tcp", kernel_memory_tcp),
        ):
            if value:  # runc ignores them too ("obsoleted"); no kernel still has the knob
                ignored(flag, value, "kernel memory limits are obsolete (as in runc)")
                obsolete = True
        res: dict = {}
        if resources_file:
            from .spec import read_json_object

            res = read_json_object(resources_file, "resources", dash_is_stdin=True)
        _merge_update_flags(res, flags)
        if not res and not obsolete:
            raise UsageError("update: nothing to change (give --resources or a limit flag)")
        lifecycle.update(g.root, cid, res)

    return guarded(go)


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "t": 1 << 40,
    "tb": 1 << 40,
}


def parse_size(text: str) -> int:
    """A memory size as runc takes it: bytes, or with k/m/g/t (binary) units; -1 = no limit."""
    t = text.strip().lower()
    if t == "-1":
        return -1
    num = t.rstrip("kmgtb")
    unit = t[len(num) :]
    try:
        value = float(num)
    except ValueError:
        raise UsageError(f"invalid size: {text}") from None
    if unit not in _SIZE_UNITS or value < 0:
        raise UsageError(f"invalid size: {text}")
    return int(value * _SIZE_UNITS[unit])


def _merge_update_flags(res: dict, flags: dict) -> None:
    def put(section: str, key: str, value) -> None:
        res.setdefault(section, {})[key] = value

    for flag, (section, key, conv) in _UPDATE_FLAGS.items():
        value = flags.get(flag)
        if value is not None:
            put(section, key, conv(value))


_UPDATE_FLAGS = {
    "blkio_weight": ("blockIO", "weight", int),
    "cpu_period": ("cpu", "period", int),
    "cpu_quota": ("cpu", "quota", int),
    "cpu_burst": ("cpu", "burst", int),
    "cpu_idle": ("cpu", "idle", int),
    "cpu_share": ("cpu", "shares", int),
    "cpu_rt_period": ("cpu", "realtimePeriod", int),
    "cpu_rt_runtime": ("cpu", "realtimeRuntime", int),
    "cpuset_cpus": ("cpu", "cpus", str),
    "cpuset_mems": ("cpu", "mems", str),
    "memory": ("memory", "limit", parse_size),
    "memory_reservation": ("memory", "reservation", parse_size),
    "memory_swap": ("memory", "swap", parse_size),
    "pids_limit": ("pids", "limit", int),
}


def events(g: Globals, cid: str, stats: bool = False, interval: str = "5s") -> int:
    from . import lifecycle

    def go():
        secs = _parse_duration(interval)

        def emit(event: dict) -> None:
            print(json.dumps(event), flush=True)

        lifecycle.events(g.root, cid, emit, once=stats, interval=secs)

    return guarded(go)


def _parse_duration(text: str) -> float:
    """Go-style durations as runc takes them: 5s, 500ms, 1m, 1.5s."""
    t = text.strip()
    for suffix, scale in (("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if t.endswith(suffix):
            try:
                value = float(t[: -len(suffix)]) * scale
            except ValueError:
                break
            if value > 0:
                return value
            break
    raise UsageError(f"invalid interval: {text}")


def list_(g: Globals, fmt: str = "table", quiet: bool = False) -> int:
    def go():
        if fmt not in ("table", "json"):
            raise UsageError(f"invalid format {fmt!r}: use table or json")
        states = _list_states(g.root)
        if quiet:
            for s in states:
                print(s["id"])
        elif fmt == "json":
            print(json.dumps(states))
        else:
            rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
            rows += [
                (s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"])
                for s in states
            ]
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                print("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())

    return guarded(go)


def spec(g: Globals, bundle: str = ".", rootless: bool = False) -> int:
    import json as stdjson
    import os

    from .defaults import default_config

    path = os.path.join(bundle, "config.json")

    def go():
        if os.path.exists(path):
            raise OcirunError(f"File {path} exists. Remove it first")
        try:
            with open(path, "x") as f:
                # Laid out as runc writes it (tabs), so the two diff cleanly.
                f.write(stdjson.dumps(default_config(rootless=rootless), indent="\t"))
                f.write("\n")
        except OSError as e:
            raise OcirunError(f"write {path}: {e.strerror}") from None

    return guarded(go)


def gc(g: Globals, dry_run: bool = False) -> int:
    """What crashed or killed runtimes left under the root (ocirun/gc.py): one line each
    on stdout, with why; what could not be removed on stderr, and exit 1."""
    from . import gc as gcmod

    def go():
        report = gcmod.collect(g.root, dry_run)
        failed = 0
        for f in report.found:
            if f.error:
                failed += 1
                warn(f"{f.kind} {f.path}: {f.why}: not removed: {f.error}")
            else:
                print(f.line(dry_run))
        for note in report.kept:
            print(f"kept {note}")
        return 1 if failed else 0

    return guarded(go)


def checkpoint(g: Globals, cid: str, **opts) -> int:
    def go():
        from .checkpoint import CheckpointOptions
        from .checkpoint import checkpoint as dump

        dump(g.root, cid, CheckpointOptions(**opts), g.criu)

    return guarded(go)


def restore(g: Globals, cid: str, **opts) -> int:
    def go():
        from .restore import RestoreOptions
        from .restore import restore as undump

        g.rootless_cgroups()  # refuses a bad --rootless, as create does
        return undump(g.root, cid, RestoreOptions(systemd_cgroup=g.systemd_cgroup, **opts), g.criu)

    return guarded(go)


def features(g: Globals) -> int:
    from .features import features as feats

    print(json.dumps(feats(g.criu), indent=2))
    return 0


def version_text(criu: str | None = None) -> str:
    from . import SPEC_VERSION, __version__
    from .criu_rpc import describe
    from .seccomp import libseccomp_version

    found, why = describe(criu)
    return (
        f"ocirun version {__version__}\nspec: {SPEC_VERSION}\n"
        f"python: {sys.version.split()[0]}\nlibseccomp: {libseccomp_version()}\n"
        f"criu: {found or 'unavailable: ' + why}"
    )
