"""Configs written by other tools, run unchanged by ocirun and by runc side by side.

Only `process.args` (the probe below), `process.terminal` (false: no console socket here)
and `root.path` (a fresh private copy of the busybox rootfs for every run, so that what one
runtime creates in it cannot hide what the other fails to create) are changed.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from clitools import call
from testenv import OCIRUN, ROOTFS

RUNC = shutil.which("runc") or "/usr/sbin/runc"
CRUN = shutil.which("crun") or "/usr/bin/crun"
CAP_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
STATUS_LINE = re.compile(r"^[A-Za-z_]+:\t")

# What the process sees. SYSCALLS go through the static probe (tests/probe), copied in as
# /bin/probe: (name, x86_64 number, args). Under containers-common's profile: personality
# with an allowed / a refused argument, add_key (not in the profile: its default ENOSYS),
# acct (refused unless CAP_SYS_PACCT), userfaultfd (EPERM), an audit netlink socket (allowed
# with CAP_AUDIT_WRITE), mount (allowed; the capabilities refuse it), mseal (newer).
SYSCALLS = [
    ("personality-query", 135, "0xffffffff"),
    ("personality-1", 135, "1"),
    ("add_key", 248, "0 0 0 0 0"),
    ("acct", 163, "0"),
    ("userfaultfd", 323, "0"),
    ("socket-audit", 41, "16 3 9"),
    ("mount", 165, "0 0 0 0 0"),
    ("mseal", 462, "0 0 0"),
]
PROBE = r"""
echo "id=$(id)"
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|Groups|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status
echo "HOME=$HOME"
echo "PATH=$PATH"
echo "uid_map=$(tr -s ' ' </proc/self/uid_map | tr '\n' ';')"
echo "gid_map=$(tr -s ' ' </proc/self/gid_map | tr '\n' ';')"
echo "hostname=$(hostname)"
echo "cwd=$(pwd)"
echo "umask=$(umask)"
echo "nofile=$(ulimit -n)"
echo "nproc=$(ulimit -u)"
env | sort | sed 's/^/env:/'
stat -c 'dev:%n %F %a %u %g %t:%T %N' /dev/* /dev/pts/*
sed 's/^/mi:/' /proc/self/mountinfo
"""
PROBE_SYSCALLS = PROBE + "".join(
    f'echo "syscall {name}: $(/bin/probe syscall {nr} {args})"\n' for name, nr, args in SYSCALLS
)


def unique_id(what: str) -> str:
    return f"fc-{what}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- configs


def tool_spec(tool: str, *flags: str) -> dict:
    """`<tool> spec [flags]` in a private temp dir: the config.json it writes."""
    with tempfile.TemporaryDirectory(prefix="ocirun-fc-spec.") as d:
        r = subprocess.run(
            [tool, "spec", *flags],
            cwd=d,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
        )
        assert r.returncode == 0, f"{tool} spec {' '.join(flags)} failed: {r.stderr}"
        return json.loads((Path(d) / "config.json").read_text())


def adapt(cfg: dict, rootfs: Path, script: str = PROBE) -> dict:
    """The three permitted changes; everything else is the tool's."""
    cfg = json.loads(json.dumps(cfg))
    cfg["process"]["args"] = ["sh", "-c", script]
    cfg["process"]["terminal"] = False
    cfg["root"]["path"] = str(rootfs)
    return cfg


def convert_seccomp(profile: dict, caps: list[str], arch: str | None = None) -> dict:
    """A moby/containers-common seccomp.json -> an OCI linux.seccomp object, the way
    containers/common (podman) and moby do it: architectures from archMap for this machine,
    rules kept or dropped by includes/excludes (arches, caps of the bounding set, minKernel),
    and only the OCI fields (names, action, errnoRet, args) kept."""
    goarch = arch or {"x86_64": "amd64", "aarch64": "arm64"}.get(
        platform.machine(), platform.machine()
    )
    scmp = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64"}.get(goarch)
    kernel = tuple(int(x) for x in platform.release().split("-")[0].split(".")[:2])

    def kernel_ok(v: str) -> bool:
        return kernel >= tuple(int(x) for x in v.split(".")[:2])

    out: dict = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = []
    for entry in profile.get("archMap") or []:
        if entry["architecture"] == scmp:
            arches = [entry["architecture"], *(entry.get("subArchitectures") or [])]
    out["architectures"] = arches
    rules = []
    for call_ in profile["syscalls"]:
        inc, exc = call_.get("includes") or {}, call_.get("excludes") or {}
        if goarch in (exc.get("arches") or []) or any(c in caps for c in exc.get("caps") or []):
            continue
        if exc.get("minKernel") and kernel_ok(exc["minKernel"]):
            continue
        if inc.get("arches") and goarch not in inc["arches"]:
            continue
        if any(c not in caps for c in inc.get("caps") or []):
            continue
        if inc.get("minKernel") and not kernel_ok(inc["minKernel"]):
            continue
        rule = {"names": list(call_.get("names") or [call_["name"]]), "action": call_["action"]}
        if call_.get("errnoRet") is not None:
            rule["errnoRet"] = call_["errnoRet"]
        if call_.get("args"):
            # Go's omitempty: a zero valueTwo is not written
            rule["args"] = [
                {
                    k: a[k]
                    for k in ("index", "value", "valueTwo", "op")
                    if k in a and (k != "valueTwo" or a[k])
                }
                for a in call_["args"]
            ]
        rules.append(rule)
    out["syscalls"] = rules
    return out


# --------------------------------------------------------------------------- what it saw


def parse(out: str) -> dict:
    """The probe's output as {field: value}; mounts as "mount-point fstype" in order, and
    mount_opts {mount point: "per-mount options - superblock options"}."""
    seen: dict = {"env": [], "dev": [], "mounts": [], "mount_opts": {}, "syscalls": {}}
    for line in out.splitlines():
        if line.startswith(("env:", "dev:")):
            seen[line[:3]].append(line[4:])
        elif line.startswith("mi:"):
            f = line[3:].split()
            sep = f.index("-", 6)
            seen["mounts"].append(f"{f[4]} {f[sep + 1]}")
            seen["mount_opts"][f[4]] = f"{f[5]} - {f[sep + 3]}"  # per-mount - super
        elif line.startswith("syscall "):
            name, _, result = line[len("syscall ") :].partition(": ")
            seen["syscalls"][name] = result
        elif STATUS_LINE.match(line):  # from /proc/self/status: "CapEff:\t0000..."
            key, _, value = line.partition(":")
            seen[key] = value.strip()
        else:
            key, sep, value = line.partition("=")
            if sep:
                seen[key] = value
    return seen


def differences(ours: dict, theirs: dict, fields) -> dict:
    """{field: what differs}, as short as it can be said: for a dict the keys whose values
    differ, for a list what only one side has (or both orders, if that is all)."""
    diff = {}
    for f in fields:
        a, b = ours.get(f), theirs.get(f)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            diff[f] = {
                k: {"ocirun": a.get(k), "runc": b.get(k)}
                for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)
            }
        elif isinstance(a, list) and isinstance(b, list) and sorted(a) != sorted(b):
            diff[f] = {
                "only ocirun": [x for x in a if x not in b],
                "only runc": [x for x in b if x not in a],
            }
        else:
            diff[f] = {"ocirun": a, "runc": b}
    return diff


def describe(diff: dict) -> str:
    return "ocirun differs from runc:\n" + "\n".join(
        f"{f}: {json.dumps(v)}" for f, v in diff.items()
    )


# --------------------------------------------------------------------------- running


def pristine_rootfs(dest: Path, probe: Path | None) -> Path:
    """One private copy of the shared rootfs (+ the probe as /bin/probe) to copy each run's
    from. -x: a container of another test run may have something mounted on the shared
    rootfs right now (a procfs there once made `cp -a` copy /proc/kcore and fill the disk)."""
    subprocess.run(["cp", "-ax", str(ROOTFS), str(dest)], check=True)
    for sub in ("proc", "sys", "dev"):
        assert not os.listdir(dest / sub), f"{ROOTFS}/{sub} was not empty"
    if probe is not None:
        shutil.copy(probe, dest / "bin" / "probe")
    return dest


def write_bundle(base: Path, name: str, cfg: dict, script: str, source: Path) -> Path:
    bundle = base / name
    bundle.mkdir()
    rootfs = bundle / "rootfs"
    subprocess.run(["cp", "-ax", str(source), str(rootfs)], check=True)
    (bundle / "config.json").write_text(json.dumps(adapt(cfg, rootfs, script), indent=1))
    return bundle


def run_runc(root: str, bundle: Path, cid: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.run(
            [RUNC, "--root", root, "run", "--bundle", str(bundle), cid],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            timeout=60,
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read())


def cgroup_dirs_named(names: set[str], depth: int = 4) -> list[str]:
    """Cgroup directories (any hierarchy, up to DEPTH levels down) whose name is in NAMES."""
    found = []
    with open("/proc/self/mountinfo") as f:
        points = [
            ln.split()[4] for ln in f if ln.split(" - ")[1].split()[0] in ("cgroup", "cgroup2")
        ]
    for top in points:
        for dirpath, dirnames, _ in os.walk(top):
            if dirpath[len(top) :].count("/") >= depth:
                dirnames[:] = []
            found += [os.path.join(dirpath, d) for d in dirnames if d in names]
    return found


class SideBySide:
    """Runs one config with runc and with ocirun, each with a private --root and on a
    fresh rootfs copy under BASE; then finds whatever either left behind."""

    def __init__(self, base: Path, ocirun_root: str, source: Path):
        self.base = base
        self.source = source  # the rootfs each run gets a fresh copy of
        self.roots = {"runc": str(base / "runc-root"), "ocirun": ocirun_root}
        self.ids: list[str] = []

    def run(
        self, runtime: str, cfg: dict, what: str, script: str = PROBE
    ) -> subprocess.CompletedProcess:
        cid = unique_id(what)
        self.ids.append(cid)
        bundle = write_bundle(self.base, f"{runtime}-{cid}", cfg, script, self.source)
        if runtime == "runc":
            return run_runc(self.roots["runc"], bundle, cid)
        return call(Root(self.roots["ocirun"]), "run", "--bundle", str(bundle), cid, timeout=60)

    def both(self, cfg: dict, what: str, **kw) -> dict[str, subprocess.CompletedProcess]:
        return {rt: self.run(rt, cfg, what, **kw) for rt in ("runc", "ocirun")}

    def leftovers(self, cgroups_path: str | None = None) -> dict[str, list]:
        left: dict[str, list] = {}
        for runtime, root in self.roots.items():
            if os.path.isdir(root):
                left[f"{runtime} state"] = sorted(os.listdir(root))
        base = str(self.base)
        with open("/proc/self/mountinfo") as f:
            left["mounts"] = [ln.split()[4] for ln in f if ln.split()[4].startswith(base)]
        procs = []
        for p in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink(f"/proc/{p}/root").startswith(base):
                    procs.append(int(p))
            except OSError:
                pass
        left["processes"] = procs
        names = set(self.ids) | (
            {cgroups_path.rstrip("/").rsplit("/", 1)[-1]} if cgroups_path else set()
        )
        left["cgroups"] = cgroup_dirs_named(names)
        return {k: v for k, v in left.items() if v}

    def cleanup(self, cgroups_path: str | None = None) -> dict[str, list]:
        """Remove what was left and say what it was."""
        left = self.leftovers(cgroups_path)
        for runtime in ("runc", "ocirun"):
            for cid in left.get(f"{runtime} state", []):
                binary = RUNC if runtime == "runc" else OCIRUN
                subprocess.run(
                    [binary, "--root", self.roots[runtime], "delete", "--force", cid],
                    capture_output=True,
                )
        for pid in left.get("processes", []):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        for m in sorted(left.get("mounts", []), reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        for d in sorted(left.get("cgroups", []), key=len, reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass
        return left


class Root:
    """What clitools.call needs of a runtime: its --root."""

    def __init__(self, root: str):
        self.root = root
