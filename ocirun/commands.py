"""The bodies of the container lifecycle's commands (create, run, start, state, kill,
delete, exec, list), and what every command's body shares: the global flags, the one
place that prints an error, `guarded`. commands_ops.py and commands_tools.py hold the
others; ocirun/clispec.py names each command's body, which both front ends call: the
typer CLI (cli.py) and the hot commands' parser (_lean.py).

Each function takes parsed arguments, does the work through `container`, `lifecycle` or
`execute`, prints the result and returns the exit code. An OcirunError becomes one
message on stderr (and in --log): never a traceback for a user error.
"""

import os
import sys

from . import log
from ._lean import dumps
from .errors import OcirunError, UsageError


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
        cgroup_manager: str | None = None,
    ):
        if log_format not in ("text", "json"):
            raise UsageError(f"invalid log format {log_format!r}: use text or json")
        if root is None:  # runc's rule: $XDG_RUNTIME_DIR/ocirun for a non-root caller
            from .rootless import default_root

            root = default_root()
        try:
            # lexical, as the front door reads it: os.path keeps a leading "//"
            self.root = "/" + os.path.abspath(root).lstrip("/")
        except OSError as e:  # a relative --root in a deleted cwd
            raise OcirunError(f"root {root}: {e.strerror or e}") from None
        if cgroup_manager is not None:  # crun's flag, which crun's own test suite passes
            if cgroup_manager not in ("cgroupfs", "systemd"):
                raise UsageError(
                    f"invalid --cgroup-manager value {cgroup_manager!r}: use cgroupfs or systemd"
                )
            systemd_cgroup = systemd_cgroup or cgroup_manager == "systemd"
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless
        self.criu = criu  # checkpoint/restore: CRIU's path, else `criu` on PATH
        log.configure(log_file, log_format, debug)
        # runc's flags that mean nothing here (docs/compat.md): accepted, said in --debug.

    def rootless_cgroups(self) -> bool:
        """runc reads --rootless (auto or a Go boolean) only where it creates a container,
        and refuses a bad value there: whether cgroups the caller cannot write are skipped
        (see rootless.rootless_cgroups)."""
        from .clispec import GO_BOOLS
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
    config="config.json",
):
    from .container import CreateOptions

    return CreateOptions(
        bundle=bundle,
        config=config,
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
        print(dumps(lifecycle.state(g.root, cid), indent=2))

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
    from .hostfacts import check_lsm

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

    return guarded(lambda: exit_255(go))


def exit_255(fn):
    """runc's `exec` exits with 255 when it fails (runc >= 1.1: "exec failed: ..."), so
    that its own failure can't be taken for the exit status of the process; a usage
    error keeps its own code."""
    try:
        return fn()
    except UsageError:
        raise
    except OcirunError as e:
        e.exit_code = 255
        raise
    except KeyboardInterrupt:
        raise
    except Exception as e:
        err = unexpected(e)
        err.exit_code = 255
        raise err from None


def warn(msg: str) -> None:
    """A problem that does not stop the command: on stderr as it is (runc's `list` prints
    it so), and in the log."""
    if log.to_file():
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


def list_(g: Globals, fmt: str = "table", quiet: bool = False) -> int:
    def go():
        if fmt not in ("table", "json"):
            raise UsageError(f"invalid format {fmt!r}: use table or json")
        states = _list_states(g.root)
        if quiet:
            for s in states:
                print(s["id"])
        elif fmt == "json":
            print(compact(states))
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


def compact(obj) -> str:
    """JSON as runc prints it (Go's encoding/json) for list, ps and events: no space after
    a separator. Scripts match `"id":"x","pid":N` byte for byte (runc's bats suite does)."""
    import json

    return json.dumps(obj, separators=(",", ":"))


def version_text(criu: str | None = None) -> str:
    from . import SPEC_VERSION, __version__
    from .criu_rpc import describe
    from .seccomp import libseccomp_version

    found, why = describe(criu)
    return (
        f"ocirun version {__version__}\nspec: {SPEC_VERSION}\n"
        f"python: {sys.version.split()[0]}\nlibseccomp: {libseccomp_version()}\n"
        f"criu: {found or f'unavailable: {why}'}"
    )
