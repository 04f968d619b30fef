"""cgroup v1 (and hybrid: v1 controllers plus a controller-less cgroup2 hierarchy that the
container joins too, as runc does): one directory per hierarchy, limits in each."""

import errno
import time

from .cgroupfs import SIGKILL, CgroupfsManager, levels_below
from .common import KERNEL_MEMORY_WARNING, CgroupError, flat_keyed, rdma_line, to_int


class V1Manager(CgroupfsManager):
    mode = "v1"

    def __init__(self, dirs: dict[str, str], *, mode: str = "v1", **kw):
        super().__init__(dirs, **kw)
        self.mode = mode  # "v1", or "hybrid" (with the controller-less cgroup2 tree)

    # ------------------------------------------------------------ lifecycle
    def create(self) -> list[str]:
        """mkdir every hierarchy's cgroup, then apply linux.resources and the device rules.
        Returns warnings. On failure nothing made here is left behind."""
        res = self.linux.get("resources") or {}
        check(res)
        try:
            self._mkdirs()
            self._cpuset_inherit()
            warnings = self._apply(res)
            self._devices()
        except BaseException:
            self._undo()
            raise
        return self.notes + warnings

    def update(self, resources: dict) -> list[str]:
        """Apply a (partial) linux.resources to the live cgroups; devices are left alone."""
        check(resources or {})
        self.check_before_update((resources or {}).get("memory") or {})
        return self._apply(resources or {})

    # ------------------------------------------------------------ resources
    def _apply(self, res: dict) -> list[str]:
        warnings: list[str] = []
        cpu = res.get("cpu") or {}
        self._cpuset(cpu)
        self._memory(res.get("memory") or {}, warnings)
        self._cpu(cpu)
        self._pids(res.get("pids"))
        self._blkio(res.get("blockIO") or {})
        self._hugetlb(res.get("hugepageLimits") or [])
        self._network(res.get("network") or {}, warnings)
        self._rdma(res.get("rdma") or {})
        return warnings

    def _need(self, sub: str, what: str) -> str:
        d = self.dirs.get(sub)
        if not d:
            raise CgroupError(f"cannot set {what} limit: container could not join or create cgroup")
        return d

    def _cpuset_inherit(self) -> None:
        """A new v1 cpuset starts with no cpus and mems, and takes no task so: fill each
        empty level from its parent, top down."""
        d, top = self.dirs.get("cpuset"), self.roots.get("cpuset")
        if not d or not top:
            return
        parent = top
        for cur in levels_below(top, d):
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if not self._read(cur, knob).strip():
                    self._write(cur, knob, self._read(parent, knob).strip())
            parent = cur

    def _cpuset(self, cpu: dict) -> None:
        if cpu.get("cpus") or cpu.get("mems"):
            d = self._need("cpuset", "cpuset")
            if cpu.get("cpus"):
                self._write(d, "cpuset.cpus", cpu["cpus"])
            if cpu.get("mems"):
                self._write(d, "cpuset.mems", cpu["mems"])

    def _memory(self, mem: dict, warnings: list[str]) -> None:
        if mem.get("kernel") is not None or mem.get("kernelTCP") is not None:
            warnings.append(KERNEL_MEMORY_WARNING)
        limit, swap = mem.get("limit") or 0, mem.get("swap") or 0
        fields = ("reservation", "swappiness", "disableOOMKiller", "useHierarchy")
        if not (limit or swap or any(mem.get(k) is not None for k in fields)):
            return
        d = self._need("memory", "memory")
        if limit == -1 and not swap and self._has(d, "memory.memsw.limit_in_bytes"):
            swap = -1  # unlimited memory: unlimited swap too, unless asked otherwise
        swap_first = False
        if limit and swap:
            # The kernel wants memory <= memory+swap at every step: order the two writes.
            current = to_int(self._read(d, "memory.limit_in_bytes"))
            swap_first = swap == -1 or current < swap
        if swap_first:
            self._write(d, "memory.memsw.limit_in_bytes", swap)
        if limit:
            self._memory_limit(d, limit)
        if swap and not swap_first:
            self._write(d, "memory.memsw.limit_in_bytes", swap)
        if mem.get("reservation"):
            self._write(d, "memory.soft_limit_in_bytes", mem["reservation"])
        if mem.get("disableOOMKiller"):
            self._write(d, "memory.oom_control", 1)
        sw = mem.get("swappiness")
        if sw is not None and sw != -1:
            if not 0 <= sw <= 100:
                raise CgroupError(f"invalid value:{sw}. valid memory swappiness range is 0-100")
            self._write(d, "memory.swappiness", sw)
        if mem.get("useHierarchy") is not None:
            self._write(d, "memory.use_hierarchy", 1 if mem["useHierarchy"] else 0)

    def _memory_limit(self, d: str, limit: int) -> None:
        try:
            self._write(d, "memory.limit_in_bytes", limit)
        except CgroupError as e:
            if e.errno != errno.EBUSY:  # below what the cgroup already uses
                raise
            usage = to_int(self._opt(d, "memory.usage_in_bytes"))
            peak = to_int(self._opt(d, "memory.max_usage_in_bytes"))
            raise CgroupError(
                f"unable to set memory limit to {limit} (current usage: {usage}, "
                f"peak usage: {peak})",
                e.path,
                e.value,
                e.errno,
            ) from None

    def _cpu(self, cpu: dict) -> None:
        keys = ("shares", "quota", "period", "burst", "idle", "realtimeRuntime", "realtimePeriod")
        if not any(cpu.get(k) is not None for k in keys):
            return
        d = self._need("cpu", "cpu")
        if cpu.get("shares"):
            shares = cpu["shares"]
            self._write(d, "cpu.shares", shares)
            got = to_int(self._read(d, "cpu.shares"))
            if shares > got:
                raise CgroupError(f"the maximum allowed cpu-shares is {got}")
            if shares < got:
                raise CgroupError(f"the minimum allowed cpu-shares is {got}")
        quota, period, burst = cpu.get("quota") or 0, cpu.get("period") or 0, cpu.get("burst")
        # A new period or burst may not fit the old quota (EINVAL): then retry after it.
        period_later = burst_later = False
        if period:
            period_later = self._try_write(d, "cpu.cfs_period_us", period, bool(quota))
        if burst is not None and self._has(d, "cpu.cfs_burst_us"):
            burst_later = self._try_write(d, "cpu.cfs_burst_us", burst, bool(quota))
        if quota:
            self._write(d, "cpu.cfs_quota_us", quota)
            if period_later:
                self._write(d, "cpu.cfs_period_us", period)
            if burst_later:
                self._write(d, "cpu.cfs_burst_us", burst)
        if cpu.get("idle") is not None:
            self._write(d, "cpu.idle", cpu["idle"])
        if cpu.get("realtimePeriod"):
            self._write(d, "cpu.rt_period_us", cpu["realtimePeriod"])
        if cpu.get("realtimeRuntime"):
            self._write(d, "cpu.rt_runtime_us", cpu["realtimeRuntime"])

    def _try_write(self, d: str, name: str, value, may_defer: bool) -> bool:
        """Write; True when EINVAL deferred it until the quota is set."""
        try:
            self._write(d, name, value)
            return False
        except CgroupError as e:
            if e.errno == errno.EINVAL and may_defer:
                return True
            raise

    def _pids(self, pids: dict | None) -> None:
        if not pids or pids.get("limit") is None:
            return
        limit = pids["limit"]
        self._write(self._need("pids", "pids"), "pids.max", "max" if limit < 0 else limit)

    def _blkio(self, bio: dict) -> None:
        lists = (
            "weightDevice",
            "throttleReadBpsDevice",
            "throttleWriteBpsDevice",
            "throttleReadIOPSDevice",
            "throttleWriteIOPSDevice",
        )
        if not (bio.get("weight") or bio.get("leafWeight") or any(bio.get(k) for k in lists)):
            return
        d = self._need("blkio", "blkio")
        # CFQ's knobs when present, else BFQ's (kernels >= 5.0 have no CFQ).
        cfq = self._has(d, "blkio.weight")
        weight_file = "blkio.weight" if cfq else "blkio.bfq.weight"
        wdev_file = "blkio.weight_device" if cfq else "blkio.bfq.weight_device"
        if bio.get("weight"):
            self._write(d, weight_file, bio["weight"])
        if bio.get("leafWeight"):
            self._write(d, "blkio.leaf_weight", bio["leafWeight"])
        for wd in bio.get("weightDevice") or []:
            dev = f"{wd['major']}:{wd['minor']}"
            if wd.get("weight"):
                self._write(d, wdev_file, f"{dev} {wd['weight']}")
            if wd.get("leafWeight"):
                self._write(d, "blkio.leaf_weight_device", f"{dev} {wd['leafWeight']}")
        for key, knob in (
            ("throttleReadBpsDevice", "read_bps_device"),
            ("throttleWriteBpsDevice", "write_bps_device"),
            ("throttleReadIOPSDevice", "read_iops_device"),
            ("throttleWriteIOPSDevice", "write_iops_device"),
        ):
            for td in bio.get(key) or []:
                self._write(
                    d, "blkio.throttle." + knob, f"{td['major']}:{td['minor']} {td['rate']}"
                )

    def _hugetlb(self, limits: list) -> None:
        if not limits:
            return
        d = self._need("hugetlb", "hugetlb")
        for hl in limits:
            prefix = f"hugetlb.{hl['pageSize']}"
            self._write(d, prefix + ".limit_in_bytes", hl["limit"])
            if self._has(d, prefix + ".rsvd.limit_in_bytes"):
                self._write(d, prefix + ".rsvd.limit_in_bytes", hl["limit"])

    def _network(self, net: dict, warnings: list[str]) -> None:
        if net.get("classID") is not None:
            d = self.dirs.get("net_cls")
            if d:
                self._write(d, "net_cls.classid", net["classID"])
            else:
                warnings.append(
                    "net_cls cgroup is not mounted: linux.resources.network.classID ignored"
                )
        if net.get("priorities"):
            d = self.dirs.get("net_prio")
            if not d:
                warnings.append(
                    "net_prio cgroup is not mounted: linux.resources.network.priorities ignored"
                )
                return
            for p in net["priorities"]:
                self._write(d, "net_prio.ifpriomap", f"{p['name']} {p['priority']}")

    def _rdma(self, rdma: dict) -> None:
        if rdma:
            d = self._need("rdma", "rdma")
            for dev, lim in rdma.items():
                self._write(d, "rdma.max", rdma_line(dev, lim))

    def _devices(self) -> None:
        d = self.dirs.get("devices")
        if not d:
            return
        if self.rootless:
            try:  # runc: "errors from the device subsystem are ignored" when rootless
                self._device_rules(d)
            except CgroupError:
                pass
            return
        self._device_rules(d)

    def _device_rules(self, d: str) -> None:
        from .devices import rule_text  # create and update only: not on delete's path

        rules = self.device_rules()
        self._write(d, "devices.deny", "a")
        for r in rules[1:]:
            self._write(d, "devices.allow" if r["allow"] else "devices.deny", rule_text(r))

    # ------------------------------------------------------------ freezer
    def _main_dir(self) -> str | None:
        for sub in ("devices", "freezer", "pids", "memory", "cpu"):
            if self.dirs.get(sub):
                return self.dirs[sub]
        return next(iter(self.dirs.values()), None)

    def can_freeze(self) -> bool:
        d = self.dirs.get("freezer")
        return self.fs.exists(d) if d else False

    def _freezer(self) -> str:
        d = self.dirs.get("freezer")
        if not d:
            raise CgroupError("cannot toggle freezer: cgroups not configured for container")
        return d

    def freeze(self) -> None:
        """FROZEN, waiting until every task is. A cgroup whose tasks keep forking can stick
        in FREEZING on v1: re-ask, thaw and retry now and then, give up after 2 s."""
        d = self._freezer()
        start = time.monotonic()
        nap, asks = 0.0, 0
        while True:
            self._write(d, "freezer.state", "FROZEN")
            asks += 1
            state = self._read(d, "freezer.state").strip()
            if state == "FROZEN":
                return
            if state != "FREEZING":
                raise CgroupError(f"unexpected state {state} while freezing")
            if time.monotonic() - start > 2.0:
                self._write(d, "freezer.state", "THAWED")
                raise CgroupError("unable to freeze")
            if asks % 64 == 0:
                self._write(d, "freezer.state", "THAWED")
                time.sleep(0.01)
            elif nap:
                time.sleep(nap)
            nap = min(nap * 2 or 0.0001, 0.005)

    def thaw(self) -> None:
        d = self._freezer()
        self._write(d, "freezer.state", "THAWED")
        for _ in range(100):
            if self._read(d, "freezer.state").strip() == "THAWED":
                return
            time.sleep(0.001)

    def frozen_now(self) -> bool:
        d = self.dirs.get("freezer")
        if not d:
            return False
        return (self._opt(d, "freezer.state") or "THAWED").strip() != "THAWED"

    def state(self) -> str:
        d = self.dirs.get("freezer")
        if not d:
            return "THAWED"
        for _ in range(1000):
            state = (self._opt(d, "freezer.state") or "THAWED").strip()
            if state == "FROZEN":
                # Frozen by us, or only through a frozen ancestor?
                own = self._opt(d, "freezer.self_freezing")
                return "FROZEN" if own is None or own.strip() == "1" else "THAWED"
            if state != "FREEZING":
                return "THAWED"
            time.sleep(0.001)
        return "THAWED"

    def kill_all(self, sig: int) -> None:
        u = self.dirs.get("")
        if sig == SIGKILL and u and self._has(u, "cgroup.kill"):
            # Hybrid: the cgroup2 hierarchy kills the lot atomically, fork races included.
            self._write(u, "cgroup.kill", 1)
        super().kill_all(sig)

    # ------------------------------------------------------------ reading
    def memory_usage(self) -> int:
        d = self.dirs.get("memory")
        return to_int(self._opt(d, "memory.usage_in_bytes")) if d else 0

    def oom_count(self) -> int:
        d = self.dirs.get("memory")
        text = self._opt(d, "memory.oom_control") if d else None
        return to_int(flat_keyed(text or "").get("oom_kill"))

    def stats(self) -> dict:
        from .stats import v1_stats  # loads os: the stats reader only

        return v1_stats(self)


def check(res: dict) -> None:
    """What cgroup v1 cannot do at all, refused before anything is made."""
    if res.get("unified"):
        raise CgroupError("linux.resources.unified requires cgroup v2")
