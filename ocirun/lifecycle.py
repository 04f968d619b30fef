"""Operations on an existing container: start, state, kill, pause/resume, ps, update,
events, delete.

Apart from `create` and `exec`, these are what engines call most (state on every query,
kill and delete on every stop), so this module imports nothing they do not need: no
planning, no validation, no compiled shim.
"""

import os

from . import _lean as json
from . import log
from ._lean import signal
from .errors import ContainerNotFound, InitError, InvalidState, OcirunError
from .state import CREATED, PAUSED, RUNNING, SHARED_PIDNS, STOPPED, Container


def start(root: str, cid: str) -> None:
    log.begin()
    with Container.load(root, cid) as c:
        status = c.status()
        log.phase("lock + state")
        if status == STOPPED:
            raise InvalidState("cannot start a container that has stopped")
        if status != CREATED:
            raise InvalidState("cannot start an already running container")
        # The init holds exec.result open for writing until its execve: open our end first.
        result = os.open(c.result_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            try:
                fd = os.open(c.fifo_path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                # ENXIO: no reader, the init is gone.
                raise InvalidState("cannot start a container that has stopped") from None
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
            os.unlink(c.fifo_path)
            log.phase("release (exec.fifo)")
            os.set_blocking(result, True)
            # EOF: the init exec'd (or died silently); text: what failed after the wait
            # (a startContainer hook, execve).
            report = os.read(result, 4096)
        finally:
            os.close(result)
        os.unlink(c.result_path)
        log.phase("the init's execve (startContainer hooks first)")
        if report:
            err, _, text = report.decode(errors="replace").partition(" ")
            raise InitError(int(err) if err.isdigit() else 0, text)
        poststart = (c.data.get("hooks") or {}).get("poststart")
        if poststart:
            from . import hooks

            try:
                # Lifecycle step 9 comes after the process was run (step 8): the hooks see
                # it running with its pid even if it has already exited (as crun; the
                # runtime-tools program hooks_stdin checks it).
                hooks.run("poststart", poststart, dict(c.oci_state(), status=RUNNING, pid=c.pid))
            except OcirunError:
                # runtime-spec 1.3 lifecycle step 9: a failed poststart hook is an error;
                # the container is stopped and destroyed (steps 12-13: poststop hooks too).
                _destroy(c, RUNNING)
                raise
            log.phase("poststart hooks")


def state(root: str, cid: str) -> dict:
    with Container.load(root, cid) as c:
        return c.oci_state()


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    signal.pidfd_send_signal(pidfd, sig, None, 0)


def kill(root: str, cid: str, sig: int) -> None:
    """Signal the init through a pidfd taken before checking that the pid is still the
    init's (start time): a pid reused meanwhile can't receive it.

    SIGKILL to a container without a pid namespace of its own goes to every process in
    its cgroups, as runc (>= 1.2) does: there the init's death does not end the others,
    which would outlive the container (even when the init is already gone)."""
    with Container.load(root, cid) as c:
        if sig == signal.SIGKILL and c.data.get(SHARED_PIDNS):
            cg = cgroups_of(c)
            if cg is not None:
                _signal_cgroups(c, cg, sig)
                return
        try:
            pidfd = os.pidfd_open(c.pid) if c.pid else -1
        except ProcessLookupError:
            pidfd = -1
        try:
            if pidfd < 0 or c.status() not in (CREATED, RUNNING, PAUSED):
                raise InvalidState("container not running")
            pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            raise InvalidState("container not running") from None
        finally:
            if pidfd >= 0:
                os.close(pidfd)


KILL_TIMEOUT = 10.0  # seconds an init may take to die after SIGKILL (runc: 10 s too)


def _kill_and_wait(c: Container) -> None:
    try:
        pidfd = os.pidfd_open(c.pid)
    except ProcessLookupError:
        return
    try:
        if c.status() == STOPPED:
            return
        pidfd_send_signal(pidfd, signal.SIGKILL)
        # A pidfd turns readable when the process exits: no polling loop. Bounded: a task
        # that can't die (frozen by someone else, stuck in the kernel) is an error, not a
        # delete that hangs for ever.
        import select

        if not select.select([pidfd], [], [], KILL_TIMEOUT)[0]:
            raise OcirunError(
                f"container init (pid {c.pid}) still running {KILL_TIMEOUT:g} s after SIGKILL"
            )
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def cgroups_of(c: Container):
    """The container's cgroup manager, or None for a state without cgroups (state.json's,
    else what create wrote down before making them: see Container.cgroup_paths)."""
    paths = c.cgroup_paths()
    if not paths or not paths.get("dirs"):
        return None  # none, or rootless and none the caller could write
    from . import cgroups

    return cgroups.from_state(paths)


def _signal_cgroups(c: Container, cg, sig: int) -> None:
    """cg.kill_all, unless the container stopped and left nothing behind (then its cgroups
    may be gone already: a systemd unit ends with its last process)."""
    if c.status() == STOPPED and not cg.pids(everywhere=True):
        return
    cg.kill_all(sig)


def kill_all(root: str, cid: str, sig: int) -> None:
    """Signal every process in the container's cgroups (runc's kill --all). A stopped
    container is no error (runc): what its init left behind in its cgroups (without a pid
    namespace of its own, the processes it did not take along) still gets the signal."""
    with Container.load(root, cid) as c:
        cg = cgroups_of(c)
        if c.status() not in (CREATED, RUNNING, PAUSED):
            if cg is not None:
                _signal_cgroups(c, cg, sig)
            return
        if cg is None:  # rootless without cgroups: the init (and its pid namespace)
            os.kill(c.pid, sig)
            return
        cg.kill_all(sig)


def pause(root: str, cid: str) -> None:
    with Container.load(root, cid) as c:
        status = c.status()
        if status not in (RUNNING, CREATED):
            raise InvalidState("container not running")
        _need_cgroups(c).freeze()


def resume(root: str, cid: str) -> None:
    with Container.load(root, cid) as c:
        if c.status() != PAUSED:
            raise InvalidState("container not paused")
        _need_cgroups(c).thaw()


def _need_cgroups(c: Container):
    cg = cgroups_of(c)
    if cg is None:
        raise InvalidState(
            "the container has no cgroups (a rootless container where the "
            "caller could not create any)"
        )
    return cg


def pids(root: str, cid: str) -> list[int]:
    with Container.load(root, cid) as c:
        return sorted(_need_cgroups(c).pids())


def update(root: str, cid: str, resources: dict) -> None:
    """Apply (partial) linux.resources to the live cgroups; remembered for later updates."""
    from . import spec

    spec.validate_resources(resources)
    with Container.load(root, cid) as c:
        if c.status() == STOPPED:
            raise InvalidState("container not running")
        cg = cgroups_of(c)
        if cg is None:
            raise InvalidState("the container has no cgroups to update")
        cg.update(resources)
        config = c.load_config()
        merged = config.setdefault("linux", {}).setdefault("resources", {})
        for key, value in resources.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key].update(value)
            else:
                merged[key] = value
        c.save_config(json.dumps(config).encode())


def events(root: str, cid: str, emit, *, once: bool, interval: float) -> None:
    """runc's events: {"type": "stats", "id", "data"} every interval (once with --stats),
    and {"type": "oom", "id"} when the cgroup's OOM count goes up; ends when it stops."""
    import time

    with Container.load(root, cid) as c:
        cg = cgroups_of(c)
        if cg is None or c.status() == STOPPED:
            raise InvalidState("container not running")
    ooms = cg.oom_count()
    while True:
        emit({"type": "stats", "id": cid, "data": cg.stats()})
        if once:
            return
        time.sleep(interval)
        now = cg.oom_count()
        if now > ooms:
            emit({"type": "oom", "id": cid})
            ooms = now
        with Container.load(root, cid) as c:
            if c.status() == STOPPED:
                return


def delete(root: str, cid: str, force: bool = False) -> None:
    log.begin()
    try:
        c = Container.load(root, cid, damaged_ok=force)
    except ContainerNotFound:
        if force:
            return
        raise
    with c:
        if c.damage:
            log.warning(c.damage)
        status = c.status()
        # runtime-spec: deleting a container that is not stopped is an error, a created one
        # too (runc 1.1 kills and deletes a created one; runtime-tools' delete checks this).
        if status in (CREATED, RUNNING, PAUSED) and not force:
            raise InvalidState(f"cannot delete container {cid} that is not stopped: {status}")
        _destroy(c, status)


def _destroy(c: Container, status: str) -> None:
    """Stop whatever still runs in the container, remove its cgroups and state dir, then
    run its poststop hooks (delete, and start after a failed poststart hook)."""
    cg = cgroups_of(c)
    if cg is not None and (status != STOPPED or cg.pids(everywhere=True)):
        # Everything in the cgroup: exec'd processes too, and without a pid namespace
        # the init's death does not take them along. Thaws a paused container.
        cg.kill_all(signal.SIGKILL)
    if status != STOPPED and c.data:
        _kill_and_wait(c)
    state = dict(c.oci_state(), status=STOPPED)
    log.phase("lock + state, load cgroup driver, stop what runs")
    if c.data.get("host_mounts") is not None:
        from . import hostmounts

        for failure in hostmounts.unmount_new(c.data["rootfs"], c.data["host_mounts"]):
            log.warning(failure)
    if cg is not None:
        cg.destroy()
        log.phase("remove cgroups")
    c.destroy()
    log.phase("remove state dir")
    poststop = (c.data.get("hooks") or {}).get("poststop")
    if poststop:
        from . import hooks

        # Failures are warnings: every poststop hook still runs, delete succeeds.
        for failure in hooks.run_all("poststop", poststop, state):
            log.warning(failure)
        log.phase("poststop hooks")


def wait_forwarding_signals(pid: int) -> int:
    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    forwarded = (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGWINCH,
    )
    old = {s: signal.signal(s, forward) for s in forwarded}
    try:
        while True:
            try:
                wpid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return 255
            if wpid == pid:
                break
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
