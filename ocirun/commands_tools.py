"""The commands around containers rather than on one: spec (a default config.json),
features, gc (what crashed runtimes left), checkpoint and restore (CRIU)."""

from ._lean import dumps
from .commands import Globals, guarded, warn
from .errors import OcirunError


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


def checkpoint(
    g: Globals,
    cid: str,
    lazy_pages: bool = False,
    status_fd: str | None = None,
    page_server: str | None = None,
    **opts,
) -> int:
    def go():
        from .checkpoint import CheckpointOptions
        from .checkpoint import checkpoint as dump

        for flag, value in (
            ("--lazy-pages", lazy_pages),
            ("--status-fd", status_fd),
            ("--page-server", page_server),
        ):
            if value:
                raise OcirunError(f"checkpoint {flag} is not supported by ocirun")
        dump(g.root, cid, CheckpointOptions(**opts), g.criu)

    return guarded(go)


def restore(g: Globals, cid: str, lazy_pages: bool = False, **opts) -> int:
    def go():
        from .restore import RestoreOptions
        from .restore import restore as undump

        if lazy_pages:
            raise OcirunError("restore --lazy-pages is not supported by ocirun")
        g.rootless_cgroups()  # refuses a bad --rootless, as create does
        return undump(g.root, cid, RestoreOptions(systemd_cgroup=g.systemd_cgroup, **opts), g.criu)

    return guarded(go)


def features(g: Globals) -> int:
    from .features import features as feats

    print(dumps(feats(g.criu), indent=2))
    return 0
