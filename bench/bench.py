#!/usr/bin/env python3
"""Side-by-side latency / throughput / RSS benchmark: ocirun vs runc vs crun.

    make bench BENCH_ARGS="--runs 10 --only run,exec --json /tmp/bench.json"
    .venv/bin/python bench/bench.py --help

Every runtime that is installed is measured in the same run, and every sample
loop interleaves the runtimes (iteration i runs A B C, iteration i+1 B C A, ...)
so that slow phases of a noisy machine hit all of them alike.  Each runtime
gets a private --root under a temp dir in /tmp, and all container ids carry a
per-run prefix; everything is deleted (delete --force, rm -r) on the way out,
also after a failure or Ctrl-C.

Timing: os.posix_spawn + a pidfd (woken exactly when the runtime exits) +
os.wait4.  Peak RSS of `create` comes from GNU time (/usr/bin/time -f %M).  We are a
child subreaper (like a containerd shim) so container inits orphaned by
`create` are reaped by us, not left as zombies.

crun 1.x refuses hybrid cgroups (a cgroup2 mount at /sys/fs/cgroup/unified
that has controllers).  On such a host crun, and only crun, is driven through
an agent process (this file, --agent) living in a private mount namespace in
which a throw-away tmpfs covers /sys/fs/cgroup/unified; the agent times the
calls with the same code, so no namespace-entry cost lands in crun's numbers.
ocirun and runc always run in the host's namespace.

Stdlib only.  Needs root.
"""

import argparse
import concurrent.futures as cf
import ctypes
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
UNIFIED = "/sys/fs/cgroup/unified"
CGROUP_ROOT = "/sys/fs/cgroup"
SECTIONS = (
    "run",
    "lifecycle",
    "kill",
    "cpu",
    "exec",
    "state",
    "throughput",
    "throughput_load",
    "rss",
)
SPAWN_ENV = dict(os.environ)
_DEVNULL = None


# ============================================================== processes


def _devnull():
    global _DEVNULL
    if _DEVNULL is None:
        _DEVNULL = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    return _DEVNULL


def _read_memfd(fd, limit=1 << 20):
    os.lseek(fd, 0, os.SEEK_SET)
    chunks, total = [], 0
    while total < limit:
        b = os.read(fd, 65536)
        if not b:
            break
        chunks.append(b)
        total += len(b)
    return b"".join(chunks).decode(errors="replace")


def spawn(argv, timeout, capture=False):
    """Run argv to completion.  Returns a dict:
    rc (exit code, negative = killed by signal, None = could not run / timed out),
    ms (wall time), maxrss (KiB, wait4's ru_maxrss: includes our own RSS, as a
    vfork'd child shares our mm until exec), out (if capture), err (stderr text).
    stdin is /dev/null; stdout/stderr are memfds, never pipes, because a
    container started by the call inherits them and may outlive the call."""
    err_fd = os.memfd_create("bench-err", os.MFD_CLOEXEC)
    out_fd = os.memfd_create("bench-out", os.MFD_CLOEXEC) if capture else None
    null = _devnull()
    actions = [
        (os.POSIX_SPAWN_DUP2, null, 0),
        (os.POSIX_SPAWN_DUP2, out_fd if capture else null, 1),
        (os.POSIX_SPAWN_DUP2, err_fd, 2),
    ]
    res = dict(rc=None, ms=None, maxrss=None, cpu_ms=0.0, out="", err="")
    try:
        t0 = time.perf_counter_ns()
        try:
            pid = os.posix_spawn(
                argv[0],
                argv,
                SPAWN_ENV,
                file_actions=actions,
                setsigmask=(),
                setsigdef=(signal.SIGINT, signal.SIGTERM, signal.SIGPIPE),
            )
        except OSError as e:
            res["err"] = "cannot run %s: %s" % (argv[0], e)
            return res
        pidfd = os.pidfd_open(pid)
        timed_out = False
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if not poller.poll(int(timeout * 1000)):
                timed_out = True
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            _, status, ru = os.wait4(pid, 0)
            t1 = time.perf_counter_ns()
        except BaseException:
            # Ctrl-C while waiting: the child got the SIGINT too; don't leave it unreaped
            try:
                if not select.select([pidfd], [], [], 5)[0]:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
            raise
        finally:
            os.close(pidfd)
        res["ms"] = (t1 - t0) / 1e6
        res["maxrss"] = ru.ru_maxrss
        res["cpu_ms"] = (ru.ru_utime + ru.ru_stime) * 1e3  # with the children it waited for
        res["err"] = _read_memfd(err_fd, 64 << 10)
        if capture:
            res["out"] = _read_memfd(out_fd)
        if timed_out:
            res["err"] = "TIMEOUT after %.0fs; %s" % (timeout, res["err"])
        else:
            res["rc"] = os.waitstatus_to_exitcode(status)
        return res
    finally:
        os.close(err_fd)
        if out_fd is not None:
            os.close(out_fd)


class _Stop:
    on = False


STOP = _Stop()  # set by the agent's SIGINT handler: a batch launches nothing more


def run_batch(argvs, conc, timeout):
    """Run all argvs with `conc` at a time; wall time and per-call rc/err."""
    results = [None] * len(argvs)

    def one(i):
        if STOP.on:
            results[i] = dict(rc=None, err="interrupted")
            return
        r = spawn(argvs[i], timeout)
        results[i] = dict(rc=r["rc"], err=r["err"])

    pool = cf.ThreadPoolExecutor(max_workers=conc)
    t0 = time.perf_counter_ns()
    try:
        futs = [pool.submit(one, i) for i in range(len(argvs))]
        for f in futs:
            f.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    wall = (time.perf_counter_ns() - t0) / 1e9
    return dict(wall=wall, results=[r or dict(rc=None, err="not run") for r in results])


def set_subreaper():
    PR_SET_CHILD_SUBREAPER = 36
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except OSError:
        return False


_ORPHAN_CPU = [0.0]  # ms of CPU (user+sys) of the orphans reaped since take_orphan_cpu()


def reap_orphans():
    """Reap exited container inits re-parented to us (their CPU time is added up for
    take_orphan_cpu).  Only call when no spawn() is in flight in another thread (it could
    steal that child's status)."""
    n = 0
    while True:
        try:
            pid, _, ru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return n
        if pid == 0:
            return n
        _ORPHAN_CPU[0] += (ru.ru_utime + ru.ru_stime) * 1e3
        n += 1


def take_orphan_cpu():
    reap_orphans()
    ms, _ORPHAN_CPU[0] = _ORPHAN_CPU[0], 0.0
    return ms


def start_cpu_load(n):
    """n busy loops (a shell's `while :`), our children; their pids."""
    pids = []
    null = _devnull()
    for _ in range(n):
        pids.append(
            os.posix_spawn(
                "/bin/sh",
                ["/bin/sh", "-c", "while :; do :; done"],
                SPAWN_ENV,
                file_actions=[(os.POSIX_SPAWN_DUP2, null, k) for k in (0, 1, 2)],
            )
        )
    return pids


def stop_cpu_load(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def first_line(text):
    for line in (text or "").splitlines():
        line = line.strip()
        if line and not line.startswith("Traceback"):
            return line[:300]
    return ""


def last_line(text):
    lines = [l.strip() for l in (text or "").splitlines() if l.strip()]
    return lines[-1][:300] if lines else ""


def err_summary(r):
    """Most useful single line of a failed call's stderr."""
    err = r.get("err", "")
    errs = [l.strip() for l in err.splitlines() if "error" in l.lower()]
    if errs:
        line = errs[-1][:300]
    elif "Traceback" in err:
        line = last_line(err)  # a Python traceback: the exception is last
    else:
        line = first_line(err)
    return "rc=%s: %s" % (r.get("rc"), line or "(no stderr)")


# ============================================================== crun's namespace agent


def agent_main():
    """Runs inside `unshare -m --propagation private`: hide the cgroup2 mount,
    then serve JSON-line requests on stdin/stdout."""
    set_subreaper()

    # Ctrl-C goes to the whole process group; the main process decides what to
    # do and will still need us for cleanup.  (A Python handler, unlike SIG_IGN,
    # is reset to default in the children we spawn.)
    def on_int(*_):
        STOP.on = True

    signal.signal(signal.SIGINT, on_int)
    out = sys.stdout
    p = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=755", "ocirun-bench-hide", UNIFIED],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    out.write(json.dumps(dict(ready=p.returncode == 0, err=p.stderr.strip())) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        op = req.get("op")
        STOP.on = False
        reap_orphans()
        if op == "call":
            resp = spawn(req["argv"], req["timeout"], req.get("capture", False))
        elif op == "batch":
            resp = run_batch(req["argvs"], req["conc"], req["timeout"])
            reap_orphans()
        elif op == "reap":
            resp = dict(n=0, cpu_ms=take_orphan_cpu())
        elif op == "exit":
            break
        else:
            resp = dict(error="unknown op %r" % op)
        resp["seq"] = req.get("seq")
        out.write(json.dumps(resp) + "\n")
        out.flush()
    reap_orphans()


class Local:
    """Runs runtime calls from this process (host mount namespace)."""

    where = "host mount namespace"
    pid = None

    def call(self, argv, timeout, capture=False):
        return spawn(argv, timeout, capture)

    def batch(self, argvs, conc, timeout):
        return run_batch(argvs, conc, timeout)

    def reap(self):
        """Reap orphans; the CPU ms of those reaped since the last call."""
        return take_orphan_cpu()

    def mountinfo(self):
        with open("/proc/self/mountinfo") as f:
            return f.read().splitlines()

    def close(self):
        pass


class Agent:
    """Runs runtime calls from an agent in a private mount namespace."""

    where = "private mount namespace, %s hidden by a tmpfs" % UNIFIED

    def __init__(self):
        self.p = subprocess.Popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "--",
                sys.executable,
                os.path.abspath(__file__),
                "--agent",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.p.pid
        self.seq = 0
        self.lock = threading.Lock()
        hello = json.loads(self.p.stdout.readline() or "{}")
        if not hello.get("ready"):
            self.close()
            raise RuntimeError("namespace agent failed: %s" % (hello.get("err") or "no answer"))

    def _req(self, **req):
        with self.lock:
            self.seq += 1
            req["seq"] = self.seq
            self.p.stdin.write(json.dumps(req) + "\n")
            self.p.stdin.flush()
            while True:  # skip answers to requests abandoned by a Ctrl-C
                line = self.p.stdout.readline()
                if not line:
                    raise RuntimeError("namespace agent died")
                resp = json.loads(line)
                if resp.get("seq") == self.seq:
                    return resp

    def call(self, argv, timeout, capture=False):
        return self._req(op="call", argv=argv, timeout=timeout, capture=capture)

    def batch(self, argvs, conc, timeout):
        return self._req(op="batch", argvs=argvs, conc=conc, timeout=timeout)

    def reap(self):
        return self._req(op="reap")["cpu_ms"]

    def mountinfo(self):
        with open("/proc/%d/mountinfo" % self.pid) as f:
            return f.read().splitlines()

    def close(self):
        if self.p.poll() is not None:
            return
        try:
            self.p.stdin.write(json.dumps(dict(op="exit")) + "\n")
            self.p.stdin.close()
            self.p.wait(timeout=10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.p.kill()
            self.p.wait()


def unified_has_controllers():
    try:
        with open(os.path.join(UNIFIED, "cgroup.controllers")) as f:
            return bool(f.read().split())
    except OSError:
        return False


# ============================================================== runtimes


class Runtime:
    def __init__(self, name, path, work, tag, execu):
        self.name = name
        self.path = path
        self.exe = execu
        self.root = os.path.join(work, "root-" + name)
        os.makedirs(self.root, exist_ok=True)
        self.prefix = tag  # every container id of this runtime starts with it
        self.live = set()  # ids that may exist in the runtime's state
        self.version = ""
        self.bundles = {}

    def argv(self, *args):
        return [self.path, "--root", self.root] + list(args)

    def call(self, *args, timeout, capture=False):
        return self.exe.call(self.argv(*args), timeout, capture)

    def force_delete(self, cid, timeout):
        r = self.call("delete", "--force", cid, timeout=timeout)
        gone = r["rc"] == 0 or not os.path.exists(os.path.join(self.root, cid))
        if gone:
            self.live.discard(cid)
        return gone

    def state_dirs(self):
        try:
            return sorted(
                d
                for d in os.listdir(self.root)
                if not d.startswith(".") and os.path.isdir(os.path.join(self.root, d))
            )
        except OSError:
            return []


def make_bundles(work, rts, base_config):
    with open(base_config) as f:
        base = json.load(f)
    rootfs = base["root"]["path"]
    if not os.path.isabs(rootfs):
        rootfs = os.path.join(os.path.dirname(os.path.abspath(base_config)), rootfs)
    if not os.path.exists(os.path.join(rootfs, "bin", "true")):
        raise SystemExit("bench: %s has no bin/true (run `make bundle`)" % rootfs)
    for rt in rts:
        for kind, args in (("true", ["/bin/true"]), ("sleep", ["/bin/sleep", "1000"])):
            c = json.loads(json.dumps(base))
            c["process"]["args"] = args
            c["process"]["terminal"] = False
            c["root"] = dict(path=rootfs, readonly=True)  # one rootfs shared read-only
            if rt.name == "crun":
                c["ociVersion"] = "1.0.2-dev"  # crun 1.8 rejects 1.3.0
            d = os.path.join(work, "bundle-%s-%s" % (rt.name, kind))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(c, f, indent=1)
            rt.bundles[kind] = d
    return rootfs


# ============================================================== results


class _Warm:
    on = False


WARM = _Warm()  # set while a warm-up iteration runs: its samples are dropped


class Row:
    def __init__(self, key, label, unit, better="lower", kind="num"):
        self.key, self.label, self.unit, self.better, self.kind = key, label, unit, better, kind
        self.samples = {}  # rt name -> [float]
        self.fails = {}  # rt name -> count
        self.errors = {}  # rt name -> first error line
        self.na = {}  # rt name -> reason
        self.text = {}  # rt name -> free text cell (kind == "text")

    def add(self, rt, value):
        if WARM.on:
            return
        self.samples.setdefault(rt.name, []).append(value)

    def fail(self, rt, msg):
        if not WARM.on:  # a warm-up failure is reported, not counted
            self.fails[rt.name] = self.fails.get(rt.name, 0) + 1
        self.errors.setdefault(rt.name, msg)

    def median(self, name):
        xs = self.samples.get(name)
        return statistics.median(xs) if xs else None

    def cell(self, name):
        if name in self.na:
            return "n/a (not implemented)"
        if self.kind == "text":
            return self.text.get(name, "-")
        m = self.median(name)
        nf = self.fails.get(name, 0)
        if m is None:
            return "fail" if nf or name in self.errors else "-"
        s = fmt(m, self.unit)
        return s + (" (%d fail)" % nf if nf else "")

    def ratio(self, a, b):
        if self.kind != "num" or self.unit == "count":
            return "-"
        ma, mb = self.median(a), self.median(b)
        if ma is None or mb is None or mb == 0:
            return "-"
        return "%.2fx" % (ma / mb)

    def to_json(self):
        d = dict(key=self.key, label=self.label, unit=self.unit, better=self.better, runtimes={})
        for name in set(self.samples) | set(self.fails) | set(self.na) | set(self.text):
            xs = self.samples.get(name, [])
            d["runtimes"][name] = dict(
                median=statistics.median(xs) if xs else None,
                min=min(xs) if xs else None,
                max=max(xs) if xs else None,
                n=len(xs),
                fails=self.fails.get(name, 0),
                samples=xs,
                error=self.errors.get(name),
                na=self.na.get(name),
                text=self.text.get(name),
            )
        return d


def fmt(v, unit):
    if unit == "ms":
        return "%.2f" % v if v < 10 else "%.1f" % v
    if unit == "count":
        return "%d" % v
    return "%.1f" % v


# ============================================================== bench


class Bench:
    def __init__(self, args, rts, rootfs, work):
        self.a = args
        self.rts = rts
        self.rootfs = rootfs
        self.work = work
        self.rows = {}
        self.order_rows = []
        self.notes = []
        self.seq = 0

    def row(self, key, label, unit, better="lower", kind="num"):
        if key not in self.rows:
            self.rows[key] = Row(key, label, unit, better, kind)
            self.order_rows.append(key)
        return self.rows[key]

    def cid(self, rt, what):
        self.seq += 1
        return "%s-%s%d" % (rt.prefix, what, self.seq)

    def rotations(self, n, warmup=0):
        """Iteration i visits the runtimes rotated by i: A B C, B C A, C A B, ...
        The first `warmup` iterations are not recorded (Row.add ignores them)."""
        k = len(self.rts)
        try:
            for i in range(-warmup, n):
                WARM.on = i < 0
                yield i, [self.rts[(i + j) % k] for j in range(k)]
        finally:
            WARM.on = False

    def reap(self):
        for rt in self.rts:
            rt.exe.reap()
        reap_orphans()

    def log(self, msg):
        print(msg, file=sys.stderr, flush=True)

    # ---------------------------------------------------------- 1. run
    def sec_run(self):
        row = self.row("run", "run /bin/true (create+start+wait+delete)", "ms")
        self.log("[run] %d x run /bin/true" % self.a.runs)
        for _, order in self.rotations(self.a.runs, self.a.warmup):
            for rt in order:
                cid = self.cid(rt, "run")
                rt.live.add(cid)
                r = rt.call("run", "--bundle", rt.bundles["true"], cid, timeout=self.a.timeout)
                if r["rc"] == 0:
                    row.add(rt, r["ms"])
                    rt.live.discard(cid)
                else:
                    row.fail(rt, "run " + err_summary(r))
                    rt.force_delete(cid, self.a.timeout)
            self.reap()

    # ---------------------------------------------------------- 2. lifecycle
    def init_pid(self, rt, cid):
        """pid of the container's init from `state` (untimed); (pid, error)."""
        st = rt.call("state", cid, timeout=self.a.timeout, capture=True)
        try:
            return int(json.loads(st["out"])["pid"]), None
        except (ValueError, KeyError, TypeError):
            return None, "state after create " + err_summary(st)

    def sec_lifecycle(self):
        rc_ = self.row("create", "create", "ms")
        rs_ = self.row("start", "start (init execs /bin/true)", "ms")
        rd_ = self.row("delete", "delete (stopped container)", "ms")
        self.log("[lifecycle] %d x create / start / wait for exit / delete" % self.a.runs)
        for _, order in self.rotations(self.a.runs, self.a.warmup):
            for rt in order:
                self.reap()
                cid = self.cid(rt, "lc")
                rt.live.add(cid)
                r = rt.call("create", "--bundle", rt.bundles["true"], cid, timeout=self.a.timeout)
                if r["rc"] != 0:
                    rc_.fail(rt, "create " + err_summary(r))
                    rt.force_delete(cid, self.a.timeout)
                    continue
                rc_.add(rt, r["ms"])
                pid, _ = self.init_pid(rt, cid)  # to wait for /bin/true's exit before delete
                pidfd = None
                if pid:
                    try:
                        pidfd = os.pidfd_open(pid)
                    except OSError:
                        pass
                r = rt.call("start", cid, timeout=self.a.timeout)
                if r["rc"] != 0:
                    rs_.fail(rt, "start " + err_summary(r))
                    if pidfd is not None:
                        os.close(pidfd)
                    rt.force_delete(cid, self.a.timeout)
                    continue
                rs_.add(rt, r["ms"])
                if pidfd is not None:
                    select.select([pidfd], [], [], 10)
                    os.close(pidfd)
                self.reap()  # so delete finds it reaped, not a zombie
                r = rt.call("delete", cid, timeout=self.a.timeout)
                if r["rc"] == 0:
                    rd_.add(rt, r["ms"])
                    rt.live.discard(cid)
                else:
                    rd_.fail(rt, "delete " + err_summary(r))
                    rt.force_delete(cid, self.a.timeout)

    # ---------------------------------------------------------- 2a. kill, delete --force
    def _running(self, rt, what):
        """A started `sleep 1000` container: (cid, pidfd of its init), or None (a failure
        recorded in the row `what`)."""
        cid = self.cid(rt, "k")
        rt.live.add(cid)
        pid_file = os.path.join(self.work, cid + ".pid")
        r = rt.call(
            "create",
            "--bundle",
            rt.bundles["sleep"],
            "--pid-file",
            pid_file,
            cid,
            timeout=self.a.timeout,
        )
        if r["rc"] == 0:
            r = rt.call("start", cid, timeout=self.a.timeout)
        if r["rc"] != 0:
            self.rows[what].fail(rt, "sleep container " + err_summary(r))
            rt.force_delete(cid, self.a.timeout)
            return None
        with open(pid_file) as f:
            pidfd = os.pidfd_open(int(f.read()))
        os.unlink(pid_file)
        return cid, pidfd

    def sec_kill(self):
        rk = self.row("kill", "kill (running container, KILL)", "ms")
        rf = self.row("delete_force", "delete --force (running container)", "ms")
        self.log("[kill] %d x kill KILL / delete --force of a running container" % self.a.runs)
        for _, order in self.rotations(self.a.runs, self.a.warmup):
            for rt in order:
                self.reap()
                got = self._running(rt, "kill")
                if got:
                    cid, pidfd = got
                    r = rt.call("kill", cid, "KILL", timeout=self.a.timeout)
                    if r["rc"] == 0:
                        rk.add(rt, r["ms"])
                        select.select([pidfd], [], [], 10)
                    else:
                        rk.fail(rt, "kill " + err_summary(r))
                    os.close(pidfd)
                    self.reap()
                    rt.force_delete(cid, self.a.timeout)
                    rt.live.discard(cid)
                got = self._running(rt, "delete_force")
                if got:
                    cid, pidfd = got
                    os.close(pidfd)
                    r = rt.call("delete", "--force", cid, timeout=self.a.timeout)
                    if r["rc"] == 0:
                        rf.add(rt, r["ms"])
                        rt.live.discard(cid)
                    else:
                        rf.fail(rt, "delete --force " + err_summary(r))
                        rt.force_delete(cid, self.a.timeout)
                    self.reap()

    # ---------------------------------------------------------- 2b. CPU per lifecycle
    def sec_cpu(self):
        """CPU time (user+sys) of one container's whole life: create (--pid-file), start,
        wait for /bin/true's exit, delete. Each call's CPU comes from wait4 (the runtime
        process with every child it waited for); the init, re-parented to whoever reaps
        for the runtime (we, or crun's agent: subreapers), adds its own when reaped."""
        row = self.row("cpu", "CPU time (user+sys) per create+start+wait+delete", "ms")
        self.log("[cpu] %d x create / start / wait / delete, CPU of every process" % self.a.runs)
        for _, order in self.rotations(self.a.runs, self.a.warmup):
            for rt in order:
                self.reap()
                take_orphan_cpu()  # what was reaped before this lifecycle is not its
                cid = self.cid(rt, "cpu")
                pid_file = os.path.join(self.work, cid + ".pid")
                rt.live.add(cid)
                r = rt.call(
                    "create",
                    "--bundle",
                    rt.bundles["true"],
                    "--pid-file",
                    pid_file,
                    cid,
                    timeout=self.a.timeout,
                )
                used = r["cpu_ms"]
                if r["rc"] != 0:
                    row.fail(rt, "create " + err_summary(r))
                    rt.force_delete(cid, self.a.timeout)
                    continue
                with open(pid_file) as f:
                    pidfd = os.pidfd_open(int(f.read()))
                os.unlink(pid_file)
                try:
                    r = rt.call("start", cid, timeout=self.a.timeout)
                    used += r["cpu_ms"]
                    if r["rc"] == 0:
                        select.select([pidfd], [], [], 10)
                finally:
                    os.close(pidfd)
                used += rt.exe.reap()
                if r["rc"] == 0:
                    r = rt.call("delete", cid, timeout=self.a.timeout)
                    used += r["cpu_ms"]
                used += rt.exe.reap()
                if r["rc"] != 0:
                    row.fail(rt, err_summary(r))
                    rt.force_delete(cid, self.a.timeout)
                    continue
                rt.live.discard(cid)
                row.add(rt, used)

    # ---------------------------------------------------------- 6. RSS
    def sec_rss(self):
        """Peak RSS of `create` via GNU time (wait4's ru_maxrss of a child we
        posix_spawn itself would include this Python process's RSS: the vfork'd
        child shares our mm until exec), and VmRSS of the init it leaves."""
        rm_ = self.row("rss_create", "peak RSS of the `create` process", "MiB")
        ri_ = self.row("rss_init", "RSS of the init held between create and start", "MiB")
        tm = shutil.which("time", path="/usr/bin:/bin")
        self.log(
            "[rss] %d x create under %s, VmRSS of the init" % (self.a.runs, tm or "(no GNU time)")
        )
        if not tm:
            for rt in self.rts:
                rm_.na[rt.name] = "needs GNU time at /usr/bin/time (apt-get install time)"
        for _, order in self.rotations(self.a.runs):
            for rt in order:
                self.reap()
                cid = self.cid(rt, "rss")
                rt.live.add(cid)
                out = os.path.join(self.work, "time-%s.out" % rt.name)
                create = rt.argv("create", "--bundle", rt.bundles["true"], cid)
                if tm:
                    r = rt.exe.call([tm, "-f", "%M", "-o", out] + create, self.a.timeout)
                else:
                    r = rt.exe.call(create, self.a.timeout)
                if r["rc"] != 0:
                    msg = "create " + err_summary(r)
                    rm_.fail(rt, msg)
                    ri_.fail(rt, msg)
                    rt.force_delete(cid, self.a.timeout)
                    continue
                if tm:
                    try:
                        with open(out) as f:
                            rm_.add(rt, int(f.read().split()[-1]) / 1024)
                    except (OSError, ValueError, IndexError) as e:
                        rm_.fail(rt, "cannot read GNU time output: %s" % e)
                pid, err = self.init_pid(rt, cid)
                kib = vmrss_kib(pid) if pid else None
                if kib is None:
                    ri_.fail(rt, err or "no VmRSS for init pid %s" % pid)
                else:
                    ri_.add(rt, kib / 1024)
                rt.force_delete(cid, self.a.timeout)

    # ---------------------------------------------------------- 3. exec
    def sec_exec(self):
        row = self.row("exec", "exec /bin/true into a running container", "ms")
        self.log("[exec] %d x exec /bin/true" % self.a.runs)
        target = {}
        for rt in self.rts:
            h = rt.call("exec", "--help", timeout=self.a.timeout, capture=True)
            if h["rc"] != 0:
                row.na[rt.name] = "`exec --help` " + err_summary(h)
                continue
            cid = self.cid(rt, "ex")
            rt.live.add(cid)
            r = rt.call("create", "--bundle", rt.bundles["sleep"], cid, timeout=self.a.timeout)
            if r["rc"] == 0:
                r = rt.call("start", cid, timeout=self.a.timeout)
            if r["rc"] != 0:
                row.fail(rt, "sleep container " + err_summary(r))
                rt.force_delete(cid, self.a.timeout)
                continue
            target[rt.name] = cid
        try:
            for _i, order in self.rotations(self.a.runs, self.a.warmup):
                for rt in order:
                    cid = target.get(rt.name)
                    if cid is None:
                        continue
                    r = rt.call("exec", cid, "/bin/true", timeout=self.a.timeout)
                    if r["rc"] == 0:
                        row.add(rt, r["ms"])
                    elif not row.samples.get(rt.name) and looks_unimplemented(r):
                        row.na[rt.name] = "first exec " + err_summary(r)
                        target.pop(rt.name)
                        rt.force_delete(cid, self.a.timeout)
                    else:
                        row.fail(rt, "exec " + err_summary(r))
        finally:
            for rt in self.rts:
                if rt.name in target:
                    rt.force_delete(target[rt.name], self.a.timeout)
            self.reap()

    # ---------------------------------------------------------- 4. state, list
    def sec_state(self):
        n = self.a.state_n
        rows = {
            1: (
                self.row("state1", "state (1 container)", "ms"),
                self.row("list1", "list (1 container)", "ms"),
            ),
            n: (
                self.row("state%d" % n, "state (%d containers)" % n, "ms"),
                self.row("list%d" % n, "list (%d containers)" % n, "ms"),
            ),
        }
        made = {rt.name: [] for rt in self.rts}
        first = {}
        try:
            self.log("[state] create 1 container each, %d x state + list" % self.a.runs)
            for rt in self.rts:
                cid = self.cid(rt, "st")
                rt.live.add(cid)
                r = rt.call("create", "--bundle", rt.bundles["true"], cid, timeout=self.a.timeout)
                if r["rc"] == 0:
                    made[rt.name].append(cid)
                    first[rt.name] = cid
                else:
                    for row in rows[1] + rows[n]:
                        row.fail(rt, "create " + err_summary(r))
                    rt.force_delete(cid, self.a.timeout)
            self._measure_state(rows[1], first, made)
            self.log(
                "[state] create %d more each (created, not started), %d x state + list"
                % (n - 1, self.a.runs)
            )
            for _, order in self.rotations(n - 1):
                for rt in order:
                    if rt.name not in first:
                        continue
                    cid = self.cid(rt, "st")
                    rt.live.add(cid)
                    r = rt.call(
                        "create", "--bundle", rt.bundles["true"], cid, timeout=self.a.timeout
                    )
                    if r["rc"] == 0:
                        made[rt.name].append(cid)
                    else:
                        rows[n][0].errors.setdefault(
                            rt.name, "create #%d " % len(made[rt.name]) + err_summary(r)
                        )
                        rt.force_delete(cid, self.a.timeout)
            for rt in self.rts:
                if rt.name in first and len(made[rt.name]) != n:
                    self.notes.append(
                        "%s: only %d of %d containers created for the state/list rows"
                        % (rt.name, len(made[rt.name]), n)
                    )
            self._measure_state(rows[n], first, made)
        finally:
            self.log("[state] deleting them")
            for i, order in self.rotations(max((len(v) for v in made.values()), default=0)):
                for rt in order:
                    if i < len(made[rt.name]):
                        rt.force_delete(made[rt.name][i], self.a.timeout)
            self.reap()

    def _measure_state(self, rows, first, made):
        rstate, rlist = rows
        for _, order in self.rotations(self.a.runs, self.a.warmup):
            for rt in order:
                cid = first.get(rt.name)
                if cid is None:
                    continue
                r = rt.call("state", cid, timeout=self.a.timeout, capture=True)
                ok = r["rc"] == 0
                if ok:
                    try:
                        ok = json.loads(r["out"]).get("id") == cid
                    except ValueError:
                        ok = False
                    if not ok:
                        r["err"] = "state output is not this container's JSON: " + r["out"][:100]
                if ok:
                    rstate.add(rt, r["ms"])
                else:
                    rstate.fail(rt, "state " + err_summary(r))
                r = rt.call("list", timeout=self.a.timeout, capture=True)
                want = set(made[rt.name])
                seen = set(w for line in r["out"].splitlines() for w in line.split()[:1]) & want
                if r["rc"] == 0 and seen == want:
                    rlist.add(rt, r["ms"])
                elif r["rc"] == 0:
                    rlist.fail(rt, "list showed %d of %d containers" % (len(seen), len(want)))
                else:
                    rlist.fail(rt, "list " + err_summary(r))

    # ---------------------------------------------------------- 5. throughput
    def sec_throughput(self):
        self._throughput("tp", "throughput", [])

    def sec_throughput_load(self):
        """The throughput with a CPU-bound load beside it: one busy loop per core, started
        by pid before the batches and killed (by pid) after them."""
        hogs = start_cpu_load(os.cpu_count() or 1)
        try:
            self._throughput("tpl", "throughput, %d busy loops beside" % len(hogs), hogs)
        finally:
            stop_cpu_load(hogs)

    def _throughput(self, key, what, exclude):
        n, conc = self.a.tp_n, self.a.tp_conc
        rate = self.row(
            key,
            "%s: %d x run @ concurrency %d [higher=better]" % (what, n, conc),
            "ctr/s",
            better="higher",
        )
        fails = self.row(key + "_fail", "%s: failed runs (all rounds)" % what, "count")
        left = self.row(
            key + "_left", "%s: leftovers state-dirs/mounts/procs/cgroups" % what, "", kind="text"
        )
        totals = {rt.name: [0, 0, 0, 0] for rt in self.rts}
        nfail = {rt.name: 0 for rt in self.rts}
        for rnd in range(self.a.tp_rounds):
            order = self.rts[rnd % len(self.rts) :] + self.rts[: rnd % len(self.rts)]
            for rt in order:
                self.reap()
                tag = "%s-%s%d-" % (rt.prefix, key, rnd)
                argvs = [
                    rt.argv("run", "--bundle", rt.bundles["true"], tag + str(k)) for k in range(n)
                ]
                mounts_before = set(self._our_mounts(rt))
                self.log(
                    "[%s] round %d: %s, %d runs at concurrency %d"
                    % (what, rnd + 1, rt.name, n, conc)
                )
                res = rt.exe.batch(argvs, conc, self.a.timeout)
                bad = [r for r in res["results"] if r["rc"] != 0]
                ok = len(res["results"]) - len(bad)
                nfail[rt.name] += len(bad)
                if bad:
                    rate.errors.setdefault(
                        rt.name,
                        "round %d: %d of %d runs failed, first: %s"
                        % (rnd + 1, len(bad), n, err_summary(bad[0])),
                    )
                if ok:
                    rate.add(rt, ok / res["wall"])
                else:
                    rate.fails[rt.name] = rate.fails.get(rt.name, 0) + 1
                time.sleep(0.2)  # let anything a runtime left running settle
                self.reap()
                lo = self._leftovers(rt, tag, mounts_before, exclude)
                for k in range(4):
                    totals[rt.name][k] += len(lo[k])
                if any(lo):
                    self.notes.append(
                        "%s %s round %d leftovers: %s"
                        % (rt.name, what, rnd + 1, describe_leftovers(lo))
                    )
                for cid in lo[0]:
                    rt.live.add(cid)
                    rt.force_delete(cid, self.a.timeout)
                remove_cgroups(lo[3])
                self.reap()
        if self.a.tp_rounds:
            for rt in self.rts:
                fails.samples[rt.name] = [nfail[rt.name]]
                left.text[rt.name] = "/".join(str(x) for x in totals[rt.name])

    def _our_mounts(self, rt):
        try:
            return [l for l in rt.exe.mountinfo() if self.rootfs in l or self.work in l]
        except OSError:
            return []

    def _leftovers(self, rt, tag, mounts_before, exclude=()):
        dirs = [d for d in rt.state_dirs() if d.startswith(tag)]
        mounts = [l for l in self._our_mounts(rt) if l not in mounts_before]
        procs = [
            p
            for p in descendants({os.getpid()} | ({rt.exe.pid} if rt.exe.pid else set()))
            if p not in agent_pids(self.rts) and p not in exclude
        ]
        cgs = find_cgroups(tag)
        return dirs, mounts, procs, cgs

    # ---------------------------------------------------------- driver
    def run(self, only):
        if "run" in only:
            self.sec_run()
        if "lifecycle" in only:
            self.sec_lifecycle()
        if "exec" in only:
            self.sec_exec()
        if "state" in only:
            self.sec_state()
        if "kill" in only:
            self.sec_kill()
        if "cpu" in only:
            self.sec_cpu()
        if "throughput" in only:
            self.sec_throughput()
        if "throughput_load" in only:
            self.sec_throughput_load()
        if "rss" in only:
            self.sec_rss()


def looks_unimplemented(r):
    e = (r.get("err") or "").lower()
    return (
        r.get("rc") == 2
        or "no such command" in e
        or "not implemented" in e
        or "unknown command" in e
        or "usage:" in e
    )


def vmrss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def proc_table():
    """pid -> ppid for every process."""
    t = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
            t[int(d)] = int(s[s.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            pass
    return t


def descendants(ancestors):
    """Live processes below any of `ancestors` (we and the agent are subreapers,
    so anything a runtime left running ends up there)."""
    t = proc_table()
    kids = {}
    for pid, ppid in t.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], list(ancestors)
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def agent_pids(rts):
    pids = set()
    for rt in rts:
        if rt.exe.pid:
            pids.add(rt.exe.pid)
    return pids


def find_cgroups(tag, maxdepth=4):
    """Cgroup directories (any hierarchy) whose name starts with tag."""
    found = []
    try:
        tops = [os.path.join(CGROUP_ROOT, d) for d in os.listdir(CGROUP_ROOT)]
    except OSError:
        return found
    for top in tops:
        if os.path.islink(top) or not os.path.isdir(top):
            continue
        stack = [(top, 0)]
        while stack:
            d, depth = stack.pop()
            try:
                with os.scandir(d) as it:
                    for e in it:
                        if e.is_dir(follow_symlinks=False):
                            if e.name.startswith(tag):
                                found.append(e.path)
                            elif depth + 1 < maxdepth:
                                stack.append((e.path, depth + 1))
            except OSError:
                pass
    return found


def remove_cgroups(paths):
    n = 0
    for p in sorted(paths, key=len, reverse=True):
        for sub, _, _ in sorted(os.walk(p), key=lambda x: len(x[0]), reverse=True):
            try:
                os.rmdir(sub)
                n += 1
            except OSError:
                pass
    return n


def describe_leftovers(lo):
    dirs, mounts, procs, cgs = lo
    parts = []
    if dirs:
        parts.append("%d state dirs (e.g. %s)" % (len(dirs), dirs[0]))
    if mounts:
        parts.append("%d mounts (e.g. %s)" % (len(mounts), mounts[0].split()[4]))
    if procs:
        parts.append("%d processes (e.g. %s)" % (len(procs), proc_desc(procs[0])))
    if cgs:
        parts.append("%d cgroups (e.g. %s)" % (len(cgs), cgs[0]))
    return ", ".join(parts)


def proc_desc(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return "%d %s" % (
                pid,
                f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:80],
            )
    except OSError:
        return str(pid)


# ============================================================== output


def print_table(bench, rts, args, elapsed, interrupted):
    names = [rt.name for rt in rts]
    ratios = [("ocirun", "runc"), ("ocirun", "crun")]
    ratios = [(a, b) for a, b in ratios if a in names and b in names]
    known = ("crun", "runc", "ocirun")
    cols = [n for n in known if n in names] + [n for n in names if n not in known]
    head = ["operation"] + cols + ["%s/%s" % r for r in ratios]
    lines = []
    for key in bench.order_rows:
        row = bench.rows[key]
        label = row.label + (" [%s]" % row.unit if row.unit and row.unit != "count" else "")
        lines.append([label] + [row.cell(n) for n in cols] + [row.ratio(a, b) for a, b in ratios])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    print()
    tp = (
        ("; throughput: median of %d round(s)" % args.tp_rounds)
        if "throughput" in args.only or "throughput_load" in args.only
        else ""
    )
    print(
        "ocirun bench: medians of %d runs per cell%s; elapsed %.0fs%s"
        % (args.runs, tp, elapsed, "; INTERRUPTED, partial results" if interrupted else "")
    )
    for rt in rts:
        print("  %-6s %s  (%s)  %s" % (rt.name, rt.path, rt.version, rt.exe.where))
    print()

    def fmt_line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    print(fmt_line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for l in lines:
        print(fmt_line(l))
    print()
    print(
        "ratios are ocirun median / other median: below 1 is faster or smaller for ms and MiB, "
        "above 1 is better for ctr/s."
    )
    errs = []
    for key in bench.order_rows:
        row = bench.rows[key]
        for n in cols:
            if n in row.na:
                errs.append("%s, %s: n/a (not implemented): %s" % (n, row.label, row.na[n]))
            elif n in row.errors:
                nf = row.fails.get(n, 0)
                errs.append(
                    "%s, %s: %s%s"
                    % (n, row.label, "%d failure(s), first: " % nf if nf else "", row.errors[n])
                )
    if errs:
        print()
        print("errors (first per runtime and operation):")
        for e in errs:
            print("  - " + e)
    if bench.notes:
        print()
        print("notes:")
        for n in bench.notes:
            print("  - " + n)


# ============================================================== main


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Benchmark ocirun against runc and crun (whichever are installed), "
        "side by side."
    )
    p.add_argument(
        "--runs",
        type=int,
        default=25,
        help="samples per latency row (default 25: the whole bench takes ~1.5 min on 2 cores)",
    )
    p.add_argument(
        "--only",
        default="",
        help="comma-separated sections to run: " + ",".join(SECTIONS) + " (default: all)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument(
        "--ocirun",
        default=os.path.join(REPO, ".venv", "bin", "ocirun"),
        help="ocirun executable (default: .venv/bin/ocirun); '' to skip",
    )
    p.add_argument(
        "--runc", default=shutil.which("runc") or "", help="runc executable ('' to skip)"
    )
    p.add_argument(
        "--crun", default=shutil.which("crun") or "", help="crun executable ('' to skip)"
    )
    p.add_argument(
        "--bundle",
        default=os.path.join(REPO, "bundles", "busybox", "config.json"),
        help="config.json whose rootfs and settings the bench bundles derive from",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="unrecorded iterations before each latency loop (default 1)",
    )
    p.add_argument(
        "--state-n",
        type=int,
        default=100,
        help="containers present for the second state/list rows (default 100)",
    )
    p.add_argument("--tp-n", type=int, default=200, help="runs per throughput batch (default 200)")
    p.add_argument(
        "--tp-conc", type=int, default=8, help="concurrency of the throughput batch (default 8)"
    )
    p.add_argument(
        "--tp-rounds",
        type=int,
        default=2,
        help="throughput batches per runtime, interleaved (default 2)",
    )
    p.add_argument(
        "--timeout", type=float, default=30, help="seconds allowed per runtime call (default 30)"
    )
    p.add_argument("--agent", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    only = [s.strip() for s in a.only.split(",") if s.strip()] or list(SECTIONS)
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        p.error("unknown section(s) %s; choose from %s" % (",".join(bad), ",".join(SECTIONS)))
    a.only = only
    if (
        a.runs < 1
        or a.warmup < 0
        or a.state_n < 1
        or a.tp_n < 1
        or a.tp_conc < 1
        or a.tp_rounds < 0
    ):
        p.error("counts must be positive")
    return a


def version_of(path):
    try:
        p = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        return first_line(p.stdout or p.stderr)
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def cleanup(rts, work, timeout):
    """delete --force everything that may exist, remove stray cgroups and the roots."""
    notes = []
    reap_orphans()
    for rt in rts:
        ids = set(rt.live) | set(rt.state_dirs())
        for cid in sorted(ids):
            try:
                if not rt.force_delete(cid, timeout):
                    notes.append("%s: could not delete container %s" % (rt.name, cid))
            except (OSError, RuntimeError) as e:
                notes.append("%s: delete %s: %s" % (rt.name, cid, e))
        try:
            rt.exe.reap()
        except (OSError, RuntimeError):
            pass
    reap_orphans()
    for rt in rts:
        cgs = find_cgroups(rt.prefix)
        if cgs:
            n = remove_cgroups(cgs)
            notes.append("%s: removed %d stray cgroup dir(s), e.g. %s" % (rt.name, n, cgs[0]))
    for rt in rts:
        rt.exe.close()
    reap_orphans()
    with open("/proc/self/mountinfo") as f:
        busy = [l.split()[4] for l in f if work in l]
    if busy:
        notes.append("kept %s: still mounted below it: %s" % (work, ", ".join(busy[:3])))
    else:
        shutil.rmtree(work, ignore_errors=True)
    return notes


def main(argv):
    if argv and argv[0] == "--agent":
        agent_main()
        return 0
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (namespaces, mounts, cgroups)", file=sys.stderr)
        return 2

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    wanted = []
    for name in ("crun", "runc", "ocirun"):
        path = getattr(args, name)
        if not path:
            print("bench: %s not found, skipped" % name, file=sys.stderr)
            continue
        path = os.path.abspath(path)
        if not os.access(path, os.X_OK):
            print("bench: %s (%s) is not executable, skipped" % (name, path), file=sys.stderr)
            continue
        wanted.append((name, path))
    if not wanted:
        print("bench: no runtime to measure", file=sys.stderr)
        return 2

    subreaper = set_subreaper()
    work = tempfile.mkdtemp(prefix="ocirun-bench.", dir="/tmp")
    run_tag = "ob%d" % (os.getpid() % 100000)
    rts = []
    bench = None
    interrupted = False
    t0 = time.time()
    cleanup_notes = []
    try:
        for name, path in wanted:
            execu = Local()
            if name == "crun" and unified_has_controllers():
                try:
                    execu = Agent()
                except RuntimeError as e:
                    print("bench: crun skipped: %s" % e, file=sys.stderr)
                    continue
            rt = Runtime(name, path, work, "%s-%s" % (run_tag, name), execu)
            rt.version = version_of(path)
            rts.append(rt)
        rootfs = make_bundles(work, rts, args.bundle)
        bench = Bench(args, rts, rootfs, work)
        if not subreaper:
            bench.notes.append("could not become a child subreaper; exited inits may stay zombies")
        print(
            "bench: %s; runs=%d, sections=%s, work dir %s"
            % (
                ", ".join("%s=%s" % (rt.name, rt.path) for rt in rts),
                args.runs,
                ",".join(args.only),
                work,
            ),
            file=sys.stderr,
        )
        bench.run(args.only)
    except KeyboardInterrupt:
        interrupted = True
        print("\nbench: interrupted, cleaning up", file=sys.stderr)
    finally:
        old = signal.signal(
            signal.SIGINT, signal.SIG_IGN
        )  # a second Ctrl-C must not stop the cleanup
        try:
            cleanup_notes = cleanup(rts, work, args.timeout)
        finally:
            signal.signal(signal.SIGINT, old)
    if bench is None:
        return 130 if interrupted else 1
    bench.notes.extend(cleanup_notes)
    elapsed = time.time() - t0
    print_table(bench, rts, args, elapsed, interrupted)
    if args.json:
        doc = dict(
            when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            kernel=os.uname().release,
            cpus=os.cpu_count(),
            elapsed_s=elapsed,
            interrupted=interrupted,
            options={k: v for k, v in vars(args).items() if k != "agent"},
            runtimes={
                rt.name: dict(path=rt.path, version=rt.version, where=rt.exe.where) for rt in rts
            },
            rows=[bench.rows[k].to_json() for k in bench.order_rows],
            notes=bench.notes,
        )
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print("\nwrote %s" % args.json)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
