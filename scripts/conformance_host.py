"""Host state for scripts/conformance.py: find and remove what a validation program and the
runtime under test left behind (processes, mounts, cgroups). Everything is found by what
identifies it as the suite's (its session, its temp dir, its container ids, the cgroup names
the programs use) and killed or removed by pid or path, never by name.
"""

import ctypes
import os
import re
import signal
import time
from pathlib import Path

libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


# --- processes --------------------------------------------------------------------------------


def proc_stat(pid):
    """(state, session) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[3])
    except (OSError, IndexError, ValueError):
        return None


def alive(pid):
    """Running: not gone, and not a zombie waiting for its new parent to reap it."""
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def kill_pids(pids):
    """SIGKILL each pid (never ourselves) and wait up to 2 s for them to die."""
    pids = [p for p in pids if p != os.getpid()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 2
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


def session_pids(sid):
    """The live processes of session `sid`: the program run with a session of its own, the
    runtimes it started, their hooks, helpers like linux_ns_path's `unshare ... sleep`."""
    return [
        p
        for p in all_pids()
        if p != os.getpid() and (proc_stat(p) or ("", 0))[1] == sid and alive(p)
    ]


def pids_in_cgroups(names):
    """Live processes whose cgroup path (any hierarchy) has a component in `names`: the
    container ids (the default cgroupsPath) and "cgrouptest". runc's init calls setsid(),
    so its containers are not in the program's session."""
    found = []
    for pid in all_pids():
        try:
            text = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue
        if set(re.split(r"[/:\n]", text)) & names and alive(pid):
            found.append(pid)
    return [p for p in found if p != os.getpid()]


# --- mounts -------------------------------------------------------------------------------------


def _unescape(path):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mounts_under(prefix):
    with open("/proc/self/mountinfo") as f:
        points = [_unescape(line.split()[4]) for line in f]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def unmount_all(prefix):
    """Unmount everything under `prefix`, deepest first (lazily if busy); returns the count.
    linux_rootfs_propagation (shared) and runc's linux_ns_itype (no mount namespace) leave
    proc/sysfs/dev mounts under their bundles in the host's mount namespace."""
    count = 0
    for _ in range(10):  # shared propagation can stack copies on one mount point
        points = sorted(set(mounts_under(prefix)), key=lambda p: p.count("/"), reverse=True)
        if not points:
            break
        for point in points:
            if (
                libc.umount2(point.encode(), 0) == 0
                or libc.umount2(point.encode(), MNT_DETACH) == 0
            ):
                count += 1
    return count


# --- cgroups ------------------------------------------------------------------------------------


def cgroup_roots():
    """{mount point: this process's own cgroup in it} for every cgroup hierarchy."""
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                own[c.replace("name=", "")] = path
    roots = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, post = line.split(" - ", 1)
            fstype, _, opts = post.split()[:3]
            if fstype == "cgroup2":
                key = ""
            elif fstype == "cgroup":
                key = next(
                    (
                        o.replace("name=", "")
                        for o in opts.split(",")
                        if o.replace("name=", "") in own
                    ),
                    None,
                )
            else:
                continue
            if key in own:
                roots[_unescape(pre.split()[4])] = own[key]
    return roots


def test_cgroups(ids):
    """The cgroup directories the programs make, deepest first: /cgrouptest
    (cgroups.AbsCgroupPath), <own cgroup>/testdir (cgroups.RelCgroupPath is relative to the
    runtime's cgroup, which is ours) and one per container id (the default cgroupsPath)."""
    found = set()
    for root, own in cgroup_roots().items():
        here = Path(root, own.lstrip("/"))
        # crun takes the relative path from the hierarchy's root: root/testdir too
        tops = [Path(root, "cgrouptest"), here / "testdir", Path(root, "testdir")]
        tops += [Path(root, cid) for cid in ids] + [here / cid for cid in ids]
        for top in tops:
            if top.is_dir():
                found.update(Path(d) for d, _, _ in os.walk(top))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_cgroups(dirs):
    """Kill what is still in each (by pid), thaw it, rmdir it; returns how many went."""
    removed = 0
    for d in dirs:
        for name in ("cgroup.procs", "tasks"):
            try:
                kill_pids([int(x) for x in (d / name).read_text().split()])
            except OSError:
                pass
        try:
            (d / "freezer.state").write_text("THAWED")
        except OSError:
            pass
        for _ in range(50):  # killed tasks leave the cgroup asynchronously
            try:
                d.rmdir()
                removed += 1
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)
    return removed
