"""The command line (typer): runc's commands and flags. The one place that prints.

Every command body calls into `container` and turns an OcirunError into one line on stderr
(and in --log), exit 1; never a traceback for a user error.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Callable, List, Optional

import typer

from . import SPEC_VERSION, __version__
from . import log
from .errors import OcirunError, UsageError
from .state import DEFAULT_ROOT

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="ocirun: an OCI container runtime, a drop-in for runc.",
)


class Globals:
    root: str = DEFAULT_ROOT
    systemd_cgroup: bool = False
    debug: bool = False


G = Globals()


def version_text() -> str:
    return f"ocirun version {__version__}\nspec: {SPEC_VERSION}\npython: {sys.version.split()[0]}"


def _version(value: bool) -> None:
    if value:
        print(version_text())
        raise typer.Exit()


@app.callback()
def main_options(
    root: str = typer.Option(DEFAULT_ROOT, "--root", help="state directory"),
    log_file: Optional[str] = typer.Option(None, "--log", help="log file"),
    log_format: str = typer.Option("text", "--log-format", help="text or json"),
    debug: bool = typer.Option(False, "--debug", help="log debug messages"),
    systemd_cgroup: bool = typer.Option(False, "--systemd-cgroup",
                                        help="use systemd to manage cgroups"),
    version: bool = typer.Option(False, "--version", "-v", callback=_version, is_eager=True,
                                 help="print the version"),
) -> None:
    if log_format not in ("text", "json"):
        fail(UsageError(f"invalid log format {log_format!r}: use text or json"))
    log.configure(log_file, log_format, debug)
    G.root, G.systemd_cgroup, G.debug = os.path.abspath(root), systemd_cgroup, debug


def fail(err: OcirunError) -> None:
    """Report `err` once (stderr + the log) and exit with its code."""
    log.error(err.message)
    print(err.message, file=sys.stderr)
    raise typer.Exit(err.exit_code)


def guard(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except OcirunError as e:
        fail(e)
    except KeyboardInterrupt:
        raise typer.Exit(130)


def _no_systemd() -> None:
    if G.systemd_cgroup:
        raise OcirunError("--systemd-cgroup is not supported yet")


def _create_options(bundle, pid_file, console_socket, no_pivot, no_new_keyring, preserve_fds):
    from .container import CreateOptions

    return CreateOptions(bundle=bundle, pid_file=pid_file, console_socket=console_socket,
                         no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                         preserve_fds=preserve_fds)


BUNDLE = typer.Option(".", "--bundle", "-b", help="bundle directory (config.json + rootfs)")
PID_FILE = typer.Option(None, "--pid-file", help="write the init's pid here")
CONSOLE = typer.Option(None, "--console-socket", help="unix socket for the pty master")
NO_PIVOT = typer.Option(False, "--no-pivot", help="MS_MOVE + chroot instead of pivot_root")
NO_KEYRING = typer.Option(False, "--no-new-keyring", help="keep the caller's session keyring")
PRESERVE = typer.Option(0, "--preserve-fds", min=0, help="pass fds 3..3+N-1 to the process")


@app.command()
def create(
    container_id: str = typer.Argument(..., metavar="ID"),
    bundle: str = BUNDLE,
    pid_file: Optional[str] = PID_FILE,
    console_socket: Optional[str] = CONSOLE,
    no_pivot: bool = NO_PIVOT,
    no_new_keyring: bool = NO_KEYRING,
    preserve_fds: int = PRESERVE,
) -> None:
    """Create a container; its init waits for `start`."""
    from . import container

    def go():
        _no_systemd()
        opts = _create_options(bundle, pid_file, console_socket, no_pivot, no_new_keyring,
                               preserve_fds)
        container.create(G.root, container_id, opts)

    guard(go)


@app.command()
def start(container_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Start a created container: its init execs process.args."""
    from . import container

    guard(lambda: container.start(G.root, container_id))


@app.command()
def state(container_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Print the container's state as JSON."""
    from . import container

    st = guard(lambda: container.state(G.root, container_id))
    print(json.dumps(st, indent=2))


def parse_signal(text: str) -> int:
    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 < n < signal.NSIG:
            return n
    else:
        name = t if t.startswith("SIG") else "SIG" + t
        sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
        if sig is not None:
            return int(sig)
    raise UsageError(f"invalid signal: {text}")


@app.command()
def kill(
    container_id: str = typer.Argument(..., metavar="ID"),
    sig: str = typer.Argument("TERM", metavar="[SIGNAL]"),
    all_: bool = typer.Option(False, "--all", "-a", help="signal every process of the container"),
) -> None:
    """Send a signal (default TERM) to the container's init."""
    from . import container

    def go():
        if all_:
            raise OcirunError("kill --all is not supported yet")
        container.kill(G.root, container_id, parse_signal(sig))

    guard(go)


@app.command()
def delete(
    container_id: str = typer.Argument(..., metavar="ID"),
    force: bool = typer.Option(False, "--force", "-f", help="kill a running container first"),
) -> None:
    """Delete a container and everything it holds."""
    from . import container

    guard(lambda: container.delete(G.root, container_id, force))


@app.command()
def run(
    container_id: str = typer.Argument(..., metavar="ID"),
    bundle: str = BUNDLE,
    pid_file: Optional[str] = PID_FILE,
    console_socket: Optional[str] = CONSOLE,
    detach: bool = typer.Option(False, "--detach", "-d", help="do not wait for the process"),
    keep: bool = typer.Option(False, "--keep", help="do not delete the container after exit"),
    no_subreaper: bool = typer.Option(False, "--no-subreaper", help="accepted for runc compat"),
    no_pivot: bool = NO_PIVOT,
    no_new_keyring: bool = NO_KEYRING,
    preserve_fds: int = PRESERVE,
) -> None:
    """Create and start a container; wait and exit with its exit code."""
    from . import container

    def go():
        _no_systemd()
        opts = _create_options(bundle, pid_file, console_socket, no_pivot, no_new_keyring,
                               preserve_fds)
        return container.run(G.root, container_id, opts, detach=detach, keep=keep)

    code = guard(go)
    raise typer.Exit(code)


@app.command("list")
def list_(
    fmt: str = typer.Option("table", "--format", "-f", help="table or json"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="only ids"),
) -> None:
    """List containers."""
    from . import container

    if fmt not in ("table", "json"):
        fail(UsageError(f"invalid format {fmt!r}: use table or json"))
    states = container.list_states(G.root)
    if quiet:
        for s in states:
            print(s["id"])
    elif fmt == "json":
        print(json.dumps(states))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"])
                 for s in states]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


@app.command()
def spec(
    bundle: str = typer.Option(".", "--bundle", "-b", help="where to write config.json"),
    rootless: bool = typer.Option(False, "--rootless", help="a config for rootless use"),
) -> None:
    """Write a default config.json into the bundle."""
    from .defaults import default_config

    path = os.path.join(bundle, "config.json")

    def go():
        if os.path.exists(path):
            raise OcirunError(f"File {path} exists. Remove it first")
        try:
            with open(path, "x") as f:
                json.dump(default_config(rootless=rootless), f, indent=2)
                f.write("\n")
        except OSError as e:
            raise OcirunError(f"write {path}: {e.strerror}") from None

    guard(go)


@app.command()
def features() -> None:
    """Print what this runtime supports (runtime-spec features.json)."""
    from .features import features as feats

    print(json.dumps(feats(), indent=2))


def main(argv: Optional[List[str]] = None) -> None:
    app(args=argv, prog_name="ocirun")
