"""Cleanup for operations with many side effects (create, exec, restore).

Two `contextlib.ExitStack`s: one for what is released whatever happens (fds, sockets), one
for what only a failure undoes (the init, its cgroups, the state dir); a successful
operation calls `pop_all()` on the second. Each step is best effort: the error the user must
see is the one that made the operation fail, so a step's own failure is logged at debug
level and the remaining steps still run.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

from . import log
from .errors import OcirunError


def quietly(fn: Callable[..., object], *args: object) -> None:
    """Run one cleanup step; an OSError or OcirunError is logged at debug, not raised."""
    try:
        fn(*args)
    except (OSError, OcirunError) as e:
        log.debug(f"cleanup: {getattr(fn, '__qualname__', fn)}: {e}")


class Cleanup(ExitStack):
    """An ExitStack whose steps (`add`) are best effort; steps run newest first."""

    def add(self, fn: Callable[..., object], *args: object) -> None:
        self.callback(quietly, fn, *args)
