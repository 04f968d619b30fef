"""Typed errors. Each carries the one line the user sees and the exit code.

Only the CLI prints them; everything below raises. The texts that engines parse
(containerd's shim, podman) match runc's exactly.
"""

import os


class OcirunError(Exception):
    """Base: `str(err)` is the user-facing message, one line."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(OcirunError):
    """A bad command line or flag value."""

    exit_code = 2


class ConfigError(OcirunError):
    """config.json is invalid. `problems`: each names the JSON path; the message is all of
    them on one line, joined with "; "."""

    def __init__(self, problems: list[str], source: str = "config.json"):
        self.problems = [f"{source}: {_clip(p)}" for p in problems]
        super().__init__("; ".join(self.problems))


def _clip(text: str, limit: int = 400) -> str:
    """A problem quoting a huge value (a megabyte string, a deep array) stays readable."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


class BundleError(OcirunError):
    """The bundle itself is unusable: missing dir, missing rootfs, unreadable config."""


class ContainerNotFound(OcirunError):
    def __init__(self, cid: str):
        super().__init__(f'container "{cid}" does not exist')


class ContainerExists(OcirunError):
    def __init__(self, cid: str):
        super().__init__(f"container with id exists: {cid}")


class StateDamaged(OcirunError):
    """A container's state.json can't be read as a state (truncated, emptied, garbled)."""

    def __init__(self, path: str, why: str):
        self.path = path
        super().__init__(
            f"{path}: damaged container state ({why}); delete --force removes the container"
        )


class InvalidState(OcirunError):
    """The operation does not fit the container's status (e.g. `container not running`)."""


class InitError(OcirunError):
    """The container's init failed between clone and execve: `<syscall> <path>: <strerror>`."""

    def __init__(self, errno_: int, what: str):
        self.errno = errno_
        text = f"{what}: {os.strerror(errno_)}" if errno_ else what
        super().__init__(text)


class HookError(OcirunError):
    """A hook failed or timed out."""


def sys_error(exc: OSError, what: str) -> OcirunError:
    """Wrap an OSError from the runtime side as `<what>: <strerror>`."""
    return InitError(exc.errno or 0, what)
