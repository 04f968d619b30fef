"""What every cgroup module shares: the error, cgroupfs access (FS, the one place a manager
touches the system), reading and writing knobs, and the parsers of what they print.

On the hot path: `delete` and `kill --all` load this (through cgroupfs.py), so it imports
`posix`, not os (os, posixpath and _collections_abc cost ~1 ms under `python -S`,
measured; tests/integration/test_hot_imports.py guards it) and nothing that loads typing.
"""

import errno
import os
import time

from ..errors import OcirunError

ROOT = "/sys/fs/cgroup"

KERNEL_MEMORY_WARNING = "Kernel memory settings are ignored and will be removed"


class CgroupError(OcirunError):
    """A cgroup could not be made, configured, read or removed. For a rejected write,
    `path`, `value` and `errno` say which file, what was written and why."""

    def __init__(
        self, message: str, path: str | None = None, value: str | None = None, errno: int = 0
    ):
        super().__init__(message)
        self.path, self.value, self.errno = path, value, errno


def _strerror(e: OSError) -> str:
    # Go's (and so runc's) wording is lower case: "invalid argument".
    return os.strerror(e.errno).lower() if e.errno else str(e)


class FS:
    """cgroupfs, one kernel call a method: what a manager does to the system goes through
    its `fs`. Tests substitute a fake (a directory tree whose mkdir makes the knobs, and
    that records the device filter instead of loading it)."""

    def mkdir(self, path: str) -> None:
        os.mkdir(path, 0o755)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def read(self, path: str) -> str:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while True:
                b = os.read(fd, 65536)
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks).decode()
        finally:
            os.close(fd)

    def write(self, path: str, data: str) -> None:
        # No O_CREAT: a knob the kernel lacks must fail (ENOENT), not appear.
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def subdirs(self, path: str) -> list[str]:
        try:
            with os.scandir(path) as it:
                return [e.path for e in it if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []

    def attach_device_filter(self, path: str, rules: list[dict]) -> int:
        """Make `rules` (devices.device_rules) the device filter of cgroup2 directory `path`:
        an eBPF program, replacing the one there before (ebpf.attach)."""
        from . import ebpf  # the compiled shim: create and update only

        return ebpf.attach(path, rules)

    def wait_for(self, path: str, key: str, value: str, timeout: float) -> bool:
        """Wait until the flat-keyed file (cgroup v2 `cgroup.events`) has `key value`.
        The kernel flags a change with POLLPRI, so no sleep loop on real cgroupfs."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return True  # the cgroup is gone: nothing left to wait for
        try:
            p = None  # made when the first read does not match: `select` is an extension
            deadline = time.monotonic() + timeout
            while True:
                os.lseek(fd, 0, os.SEEK_SET)
                try:
                    text = os.read(fd, 4096).decode()
                except OSError:
                    return True  # ENODEV: removed under us
                if flat_keyed(text).get(key) == value:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if p is None:
                    import select

                    # kernfs counts events from the open, so one since then still shows.
                    p = select.poll()
                    p.register(fd, select.POLLPRI)
                events = p.poll(left * 1000)
                if not any(ev & (select.POLLPRI | select.POLLERR) for _, ev in events):
                    time.sleep(min(0.005, max(left, 0)))  # a regular file (tests): no POLLPRI
        finally:
            os.close(fd)


DEFAULT_FS = FS()


def write_file(fs: FS, path: str, value: str) -> None:
    try:
        fs.write(path, value)
    except OSError as e:
        if e.errno == errno.ENOENT and not fs.exists(path):
            raise CgroupError(f"open {path}: {_strerror(e)}", path, value, e.errno) from None
        raise CgroupError(
            f'failed to write "{value}": write {path}: {_strerror(e)}', path, value, e.errno or 0
        ) from None


def read_file(fs: FS, path: str) -> str:
    try:
        return fs.read(path)
    except OSError as e:
        raise CgroupError(f"open {path}: {_strerror(e)}", path, None, e.errno or 0) from None


def read_opt(fs: FS, path: str) -> str | None:
    """The file's text, or None when it does not exist (an optional knob)."""
    try:
        return fs.read(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == errno.ENODEV:  # the cgroup was removed meanwhile
            return None
        raise CgroupError(f"open {path}: {_strerror(e)}", path, None, e.errno or 0) from None


def flat_keyed(text: str) -> dict[str, str]:
    """`key value` lines (cgroup.events, memory.stat, cpu.stat, memory.oom_control)."""
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k:
            out[k] = v.strip()
    return out


def to_int(text: str | None, default: int = 0) -> int:
    """A number as cgroupfs prints it; "max" reads as 2**64-1 (as runc reports it)."""
    if text is None:
        return default
    text = text.strip()
    if text == "max":
        return 2**64 - 1
    try:
        return int(text)
    except ValueError:
        return default


def omit_empty(d: dict, keys: tuple[str, ...]) -> dict:
    """Drop the keys Go's `omitempty` would (zero, empty list/map, None)."""
    for k in keys:
        if k in d and not d[k]:
            del d[k]
    return d


def rdma_line(dev: str, lim: dict) -> str:
    """One linux.resources.rdma entry as rdma.max takes it (v1 and v2 alike)."""
    line = dev
    if lim.get("hcaHandles") is not None:
        line += f" hca_handle={lim['hcaHandles']}"
    if lim.get("hcaObjects") is not None:
        line += f" hca_object={lim['hcaObjects']}"
    return line
