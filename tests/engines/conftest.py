"""Real container engines (containerd + ctr, podman + conmon) driving ocirun, and runc
for comparison. Everything is private and offline: a containerd started here with
its own config, root, state and socket under a pytest tmp dir; podman with its own
storage, run dir and containers.conf; busybox images built from
bundles/busybox/rootfs. Each test is parametrized over the runtime ("runc",
"ocirun"), so a failure seen only with ocirun is ocirun's.

After every test nothing may be left: no container in the engine, no runtime state
dir, no cgroup, no mount, no process.

Marking a known ocirun bug: @pytest.mark.ocirun_xfail("BUG: <exact symptom>") turns
into a strict xfail for the ocirun parametrization only.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import images
import pytest
from enginelib import (
    CTD_IMAGE,
    CTD_NS,
    OCIRUN,
    PM_IMAGE,
    ROOTFS,
    RUNTIMES,
    cgroup_dirs,
    kill_pids,
    mounts_under,
    mounts_where,
    pids_in_cgroup,
    pids_where,
    rmdir_cgroup,
    run,
    state_entries,
    unmount_under,
    wait_until,
)

HERE = Path(__file__).resolve().parent
# podman caps its own RLIMIT_NPROC (conmon and so the runtime inherit 32768), and
# without CAP_SYS_RESOURCE no runtime can raise a limit above what it inherited.
PODMAN_NPROC_CAP = 32768
LEAK_WAIT = 10  # seconds the engines get to finish asynchronous cleanup


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "engines: runs containers under real engines (containerd, podman); needs root"
    )
    config.addinivalue_line(
        "markers",
        "ocirun_xfail(reason): known ocirun bug; strict xfail for the ocirun parametrization only",
    )


def _engine_missing(module: str) -> str | None:
    need = {
        "test_containerd": ["containerd", "ctr", "containerd-shim-runc-v2"],
        "test_podman": ["podman", "conmon"],
    }.get(module, [])
    missing = [b for b in need if shutil.which(b) is None]
    if missing:
        return f"{', '.join(missing)} not installed (bash scripts/deps.sh installs them)"
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.engines)
        runtime = getattr(item, "callspec", None) and item.callspec.params.get("runtime")
        for mark in item.iter_markers("ocirun_xfail"):
            if runtime == "ocirun":
                item.add_marker(pytest.mark.xfail(strict=True, reason=mark.args[0]))
        why = None
        if os.geteuid() != 0:
            why = "engine tests need root (they start containerd and podman)"
        elif not (ROOTFS / "bin" / "busybox").exists():
            why = "engine tests need bundles/busybox/rootfs (make bundle)"
        elif not os.access(OCIRUN, os.X_OK):
            why = f"{OCIRUN} not built (make build)"
        elif runtime and not os.access(RUNTIMES[runtime], os.X_OK):
            why = f"{RUNTIMES[runtime]} not installed"
        else:
            why = _engine_missing(Path(str(item.fspath)).stem)
        if why:
            item.add_marker(pytest.mark.skip(reason=why))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.engine_call_failed = rep.failed


def _clean_and_check(request, engine: str, view) -> None:
    """Clean up after a test and fail it for what it left behind, unless the test
    itself already failed (then its leftovers are only cleaned up)."""
    failed = getattr(request.node, "engine_call_failed", True)
    left = view.cleanup(wait=not failed)
    if not failed:
        assert not left, f"left behind by {view.runtime} under {engine}: {left}"


@contextmanager
def _workdir(tmp_path_factory, name: str):
    """A private directory for one engine. Unix socket paths must stay short (108
    bytes), so a long pytest basetemp is replaced by a fresh /tmp dir (removed after)."""
    base = tmp_path_factory.mktemp(name)
    own = len(str(base)) > 60
    if own:
        base = Path(tempfile.mkdtemp(prefix=f"ocirun-{name}.", dir="/tmp"))
    try:
        yield base
    finally:
        unmount_under(str(base))
        if own:
            shutil.rmtree(base, ignore_errors=True)


def _existed(*paths: str) -> dict[str, bool]:
    return {p: os.path.exists(p) for p in paths}


def _rmdir_if_new(existed: dict[str, bool]) -> None:
    """Remove the (empty) directories in EXISTED that this session created."""
    for path in sorted(existed, key=len, reverse=True):
        if not existed[path]:
            try:
                os.rmdir(path)
            except OSError:
                pass


# =========================================================================== containerd


class Containerd:
    """A private containerd daemon, started and stopped by pid."""

    def __init__(self, base: Path):
        self.base = base
        self.sock = str(base / "containerd.sock")
        self.root = base / "root"
        self.state = base / "state"
        self.config = base / "config.toml"
        self.log = base / "containerd.log"
        self.snapshotter = "overlayfs"
        self.proc: subprocess.Popen | None = None

    def write_config(self) -> None:
        disabled = [
            "io.containerd.grpc.v1.cri",
            "io.containerd.snapshotter.v1.aufs",
            "io.containerd.snapshotter.v1.btrfs",
            "io.containerd.snapshotter.v1.devmapper",
            "io.containerd.snapshotter.v1.zfs",
            "io.containerd.tracing.processor.v1.otlp",
            "io.containerd.internal.v1.tracing",
        ]
        self.config.write_text(f"""\
version = 2
root = "{self.root}"
state = "{self.state}"
disabled_plugins = {json.dumps(disabled)}

[grpc]
  address = "{self.sock}"

[ttrpc]
  address = "{self.sock}.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{self.base / "opt"}"
""")

    def start(self, timeout: float = 20) -> None:
        self.write_config()
        # containerd leaves the images of `ctr c checkpoint --task` in its TMPDIR
        # (ctrd-checkpoint*): keep them in this daemon's directory, not in /tmp.
        (self.base / "tmp").mkdir(exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["containerd", "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env=dict(os.environ, TMPDIR=str(self.base / "tmp")),
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"containerd exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}"
                )
            if os.path.exists(self.sock) and self.ctr("version").returncode == 0:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"containerd socket {self.sock} not ready in {timeout}s:\n"
                    f"{self.log.read_text()[-3000:]}"
                )
            time.sleep(0.1)
        # overlayfs where the kernel and the tmp dir's filesystem allow it, else native.
        plugins = self.ctr("plugins", "ls").stdout
        if not re.search(r"io\.containerd\.snapshotter\.v1\s+overlayfs\s+\S+\s+ok", plugins):
            self.snapshotter = "native"

    def ctr(
        self, *args: str, ns: str = CTD_NS, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess:
        return run(
            ["ctr", "--address", self.sock, "--namespace", ns, *args], timeout=timeout, input=input
        )

    def shims(self) -> list[tuple[int, str]]:
        return pids_where(lambda cmd, _cg: "containerd-shim" in cmd and self.sock in cmd)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Shims outlive the daemon by design; these are ours (they name our socket).
        kill_pids(self.shims())
        self.proc = None


@pytest.fixture(scope="session")
def containerd(tmp_path_factory):
    existed = _existed("/run/containerd", "/run/containerd/s", "/run/containerd/fifo")
    with _workdir(tmp_path_factory, "ctd") as base:
        daemon = Containerd(base)
        daemon.start()
        try:
            archive = images.write_oci_archive(ROOTFS, base / "busybox-oci.tar", CTD_IMAGE)
            r = daemon.ctr("images", "import", "--snapshotter", daemon.snapshotter, str(archive))
            assert r.returncode == 0, f"ctr images import failed: {r.stdout}{r.stderr}"
            yield daemon
        finally:
            for task in daemon.ctr("tasks", "ls", "-q").stdout.split():
                daemon.ctr("tasks", "kill", "--all", "--signal", "KILL", task)
                daemon.ctr("tasks", "delete", "--force", task)
            for cid in daemon.ctr("containers", "ls", "-q").stdout.split():
                daemon.ctr("containers", "delete", cid)
            daemon.ctr("images", "rm", CTD_IMAGE)
            daemon.stop()
    rmdir_cgroup(f"/{CTD_NS}")
    _rmdir_if_new(existed)


class Ctd:
    """One test's view of containerd: `ctr` with the runtime under test."""

    def __init__(self, daemon: Containerd, runtime: str, tmp: Path):
        self.daemon = daemon
        self.runtime = runtime
        self.binary = RUNTIMES[runtime]
        self.runc_root = str(daemon.base / "runc-root" / runtime)
        self.state_root = os.path.join(self.runc_root, CTD_NS)  # what the shim passes as --root
        self.fifo_dir = str(tmp / "fifo")
        self.names: list[str] = []
        self.image = CTD_IMAGE
        self.env = dict(os.environ)

    def name(self, what: str) -> str:
        n = f"{what}-{self.runtime}"
        self.names.append(n)
        return n

    def ctr(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.daemon.ctr(*args, **kw)

    def argv(self, *args: str) -> list[str]:
        return ["ctr", "--address", self.daemon.sock, "--namespace", CTD_NS, *args]

    def run_argv(self, name: str, *cmd: str, opts: tuple[str, ...] = ("--rm",)) -> list[str]:
        """`ctr run` with the runtime under test."""
        return self.argv(
            "run",
            *opts,
            "--snapshotter",
            self.daemon.snapshotter,
            "--runc-binary",
            self.binary,
            "--runc-root",
            self.runc_root,
            "--fifo-dir",
            self.fifo_dir,
            self.image,
            name,
            *cmd,
        )

    def run(
        self,
        name: str,
        *cmd: str,
        opts: tuple[str, ...] = ("--rm",),
        input=None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess:
        return run(self.run_argv(name, *cmd, opts=opts), input=input, timeout=timeout)

    def start_detached(self, name: str, *cmd: str) -> int:
        r = self.run(name, *cmd, opts=("--detach",))
        assert r.returncode == 0, f"ctr run -d failed ({r.returncode}): {r.stdout}{r.stderr}"
        return self.task_pid(name)

    def task_status(self, name: str) -> str | None:
        for line in self.ctr("tasks", "ls").stdout.splitlines()[1:]:
            f = line.split()
            if f and f[0] == name:
                return f[2]
        return None

    def task_pid(self, name: str) -> int:
        for line in self.ctr("tasks", "ls").stdout.splitlines()[1:]:
            f = line.split()
            if f and f[0] == name:
                return int(f[1])
        raise AssertionError(f"no task {name}: {self.ctr('tasks', 'ls').stdout}")

    def remove(self, name: str) -> None:
        """Kill and delete NAME's task, then the container."""
        self.ctr("tasks", "kill", "--all", "--signal", "KILL", name)
        wait_until(lambda: self.task_status(name) in (None, "STOPPED"), timeout=10)
        self.ctr("tasks", "delete", "--force", name)
        self.ctr("containers", "delete", name)

    # ---- what must be gone after a test

    def leftovers(self) -> dict[str, list]:
        bundles = str(self.daemon.state / "io.containerd.runtime.v2.task" / CTD_NS)
        left = {
            "containers": self.ctr("containers", "ls", "-q").stdout.split(),
            "tasks": self.ctr("tasks", "ls", "-q").stdout.split(),
            f"state dirs in {self.state_root}": state_entries(self.state_root),
            "cgroups": [d for n in self.names for d in cgroup_dirs(f"/{CTD_NS}/{n}")],
            "mounts": mounts_under(bundles),
            "processes": [p for n in self.names for p in pids_in_cgroup(f"/{CTD_NS}/{n}\n")],
            "shims": [
                p for p in self.daemon.shims() if any(f"-id {n} " in p[1] + " " for n in self.names)
            ],
        }
        return {k: v for k, v in left.items() if v}

    def cleanup(self, wait: bool = True) -> dict[str, list]:
        """Wait for the engine to finish; then remove whatever is left and report it."""
        if wait and wait_until(lambda: not self.leftovers(), timeout=LEAK_WAIT):
            return {}
        left = self.leftovers()
        for name in set(left.get("containers", [])) | set(left.get("tasks", [])):
            self.remove(name)
        kill_pids(left.get("processes", []))
        for name in self.names:
            subprocess.run(
                [self.binary, "--root", self.state_root, "delete", "--force", name],
                capture_output=True,
            )
            rmdir_cgroup(f"/{CTD_NS}/{name}")
        return left


@pytest.fixture
def ctd(request, containerd, runtime, tmp_path):
    c = Ctd(containerd, runtime, tmp_path)
    yield c
    _clean_and_check(request, "containerd", c)


# =========================================================================== podman


class Podman:
    """Private podman storage, run dir, tmp dir, events file and containers.conf."""

    def __init__(self, base: Path):
        self.base = base
        self.graphroot = str(base / "storage")
        self.runroot = str(base / "run")
        self.tmpdir = str(base / "tmp")
        self.events = base / "events.log"
        self.conf = base / "containers.conf"
        self.storage_conf = base / "storage.conf"
        self.env = dict(
            os.environ,
            CONTAINERS_CONF=str(self.conf),
            CONTAINERS_STORAGE_CONF=str(self.storage_conf),
        )

    def write_config(self) -> None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        nproc = (
            PODMAN_NPROC_CAP if nproc == resource.RLIM_INFINITY else min(nproc, PODMAN_NPROC_CAP)
        )
        nofile = 1048576 if nofile == resource.RLIM_INFINITY else nofile
        (self.base / "conmon-tmp").mkdir(exist_ok=True)
        self.conf.write_text(f"""\
[containers]
# podman's defaults (1048576) exceed this host's hard limits: no runtime could set them.
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{self.events}"
tmp_dir = "{self.tmpdir}"
static_dir = "{self.base / "libpod"}"
volume_path = "{self.base / "volumes"}"
conmon_env_vars = ["TMPDIR={self.base / "conmon-tmp"}"]
runtime_supports_json = ["crun", "runc", "ocirun"]

[engine.runtimes]
ocirun = ["{RUNTIMES["ocirun"]}"]
runc = ["{RUNTIMES["runc"]}"]

[network]
network_config_dir = "{self.base / "cni"}"
""")
        self.storage_conf.write_text(f"""\
[storage]
driver = "overlay"
graphroot = "{self.graphroot}"
runroot = "{self.runroot}"
""")

    def argv(self, *args: str, runtime: str | None = None) -> list[str]:
        return [
            "podman",
            "--root",
            self.graphroot,
            "--runroot",
            self.runroot,
            "--storage-driver",
            "overlay",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--tmpdir",
            self.tmpdir,
            *(["--runtime", runtime] if runtime else []),
            *args,
        ]

    def podman(
        self, *args: str, runtime: str | None = None, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess:
        return run(self.argv(*args, runtime=runtime), env=self.env, timeout=timeout, input=input)

    def conmons(self) -> list[tuple[int, str]]:
        return pids_where(
            lambda cmd, _cg: cmd.startswith("/usr/bin/conmon") and str(self.base) in cmd
        )

    def container_ids(self, since: int = 0) -> list[str]:
        """IDs of the containers created since byte offset SINCE of the events file."""
        ids = []
        try:
            with open(self.events, "rb") as f:
                f.seek(since)
                data = f.read()
        except FileNotFoundError:
            return ids
        for line in data.decode(errors="replace").splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("Type") == "container" and ev.get("ID") and ev["ID"] not in ids:
                ids.append(ev["ID"])
        return ids

    def events_size(self) -> int:
        try:
            return self.events.stat().st_size
        except FileNotFoundError:
            return 0


@pytest.fixture(scope="session")
def podman(tmp_path_factory):
    cg_existed = {p: bool(cgroup_dirs(p)) for p in ("/libpod_parent", "/libpod_parent/conmon")}
    existed = _existed("/var/lib/containers", "/var/lib/containers/cache", "/run/runc")
    with _workdir(tmp_path_factory, "pm") as base:
        pm = Podman(base)
        pm.write_config()
        try:
            tar = images.write_rootfs_tar(ROOTFS, base / "rootfs.tar")
            r = pm.podman(
                "import",
                "--change",
                'CMD ["sh"]',
                "--change",
                f"ENV {images.PATH_ENV}",
                str(tar),
                PM_IMAGE,
                timeout=120,
            )
            assert r.returncode == 0, f"podman import failed: {r.stdout}{r.stderr}"
            yield pm
        finally:
            pm.podman("rm", "--all", "--force", "--time", "0")
            pm.podman("rmi", "--all", "--force")
            kill_pids(pm.conmons())
    for path in sorted(cg_existed, key=len, reverse=True):
        if not cg_existed[path]:
            rmdir_cgroup(path)
    # podman 4.3 keeps its blob-info cache in /var/lib/containers/cache whatever
    # --root says; remove it if this session made it.
    if not existed["/var/lib/containers"]:
        shutil.rmtree("/var/lib/containers", ignore_errors=True)
    elif not existed["/var/lib/containers/cache"]:
        shutil.rmtree("/var/lib/containers/cache", ignore_errors=True)
    _rmdir_if_new({"/run/runc": existed["/run/runc"]})  # runc's default --root, if empty


class Pm:
    """One test's view of podman with the runtime under test."""

    STATE_ROOTS = {"ocirun": "/run/ocirun", "runc": "/run/runc"}  # podman passes no --root

    def __init__(self, engine: Podman, runtime: str):
        self.engine = engine
        self.runtime = runtime
        self.image = PM_IMAGE
        self.state_root = self.STATE_ROOTS[runtime]
        self.events_start = engine.events_size()
        self.env = engine.env

    def name(self, what: str) -> str:
        return f"{what}-{self.runtime}"

    def podman(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.engine.podman(*args, runtime=self.runtime, **kw)

    def argv(self, *args: str) -> list[str]:
        return self.engine.argv(*args, runtime=self.runtime)

    def run_argv(self, *args: str) -> list[str]:
        return self.argv("run", "--network", "none", *args)

    def run(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        return run(self.run_argv(*args), env=self.env, input=input, timeout=timeout)

    def start_detached(self, name: str, *cmd: str, opts: tuple[str, ...] = ()) -> str:
        """`podman run --detach [OPTS] --name NAME image CMD...`: the container's full id."""
        r = self.run("--detach", *opts, "--name", name, self.image, *cmd)
        assert r.returncode == 0, f"podman run -d failed ({r.returncode}): {r.stdout}{r.stderr}"
        return r.stdout.strip()

    def inspect(self, name: str, fmt: str) -> str:
        r = self.podman("inspect", "--format", fmt, name)
        assert r.returncode == 0, f"podman inspect {name} failed: {r.stderr}"
        return r.stdout.strip()

    # ---- what must be gone after a test

    def leftovers(self) -> dict[str, list]:
        ids = self.engine.container_ids(self.events_start)
        graph = self.engine.graphroot
        left = {
            "containers": self.podman("ps", "--all", "--quiet", "--no-trunc").stdout.split(),
            f"state dirs in {self.state_root}": [
                i for i in ids if os.path.exists(os.path.join(self.state_root, i))
            ],
            "cgroups": [d for i in ids for d in cgroup_dirs(f"/libpod_parent/libpod-{i}")],
            # The storage driver keeps its own home bind-mounted: that one is podman's.
            "mounts": [m for m in mounts_under(graph) if m != os.path.join(graph, "overlay")]
            + mounts_where(lambda mp, line: any(i in line for i in ids)),
            "processes": [p for i in ids for p in pids_in_cgroup(f"libpod-{i}")],
            "conmon": [p for p in self.engine.conmons() if any(i in p[1] for i in ids)],
        }
        return {k: v for k, v in left.items() if v}

    def cleanup(self, wait: bool = True) -> dict[str, list]:
        """Wait for the engine to finish; then remove whatever is left and report it."""
        if wait and wait_until(lambda: not self.leftovers(), timeout=LEAK_WAIT):
            return {}
        left = self.leftovers()
        self.podman("rm", "--all", "--force", "--time", "0")
        kill_pids(left.get("processes", []))
        for i in self.engine.container_ids(self.events_start):
            subprocess.run([RUNTIMES[self.runtime], "delete", "--force", i], capture_output=True)
            rmdir_cgroup(f"/libpod_parent/libpod-{i}")
        return left


@pytest.fixture
def pm(request, podman, runtime):
    p = Pm(podman, runtime)
    yield p
    _clean_and_check(request, "podman", p)
