"""cgroup v2 (unified): one directory, controllers enabled down the path, limits in it.
Device rules (Manager.device_rules) become an eBPF program attached to it (ebpf.py)."""

import errno
import os

from .cgroupfs import SIGKILL, CgroupfsManager, levels_below
from .common import KERNEL_MEMORY_WARNING, CgroupError, flat_keyed, rdma_line, to_int


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] (default 1024) -> cpu.weight [1, 10000] (default 100), as runc
    >= 1.3.2 and crun >= 1.23 convert: a quadratic in log2(shares) through min, default and
    max, rounded up. 0 means unset."""
    if not shares:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    import math  # create and update only: delete loads this module too (~0.3 ms)

    l2 = math.log2(shares)
    return int(math.ceil(10 ** ((l2 * l2 + 125 * l2) / 612.0 - 7.0 / 34.0)))


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000], linearly (runc, crun)."""
    return 1 + (weight - 10) * 9999 // 990 if weight else 0


def swap_to_v2(swap: int, limit: int) -> int:
    """OCI swap is memory+swap; memory.swap.max is swap alone. 0 = leave alone, -1 = max."""
    if limit == -1 and not swap:
        return -1
    if swap in (-1, 0) or limit == -1:
        return swap
    if not limit:
        raise CgroupError("unable to set swap limit without memory limit")
    if limit < 0:
        raise CgroupError(f"invalid memory value: {limit}")
    if swap < limit:
        raise CgroupError("memory+swap limit should be >= memory limit")
    return swap - limit


def _in_user_namespace() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def _num(v: int) -> str:
    return "max" if v == -1 else str(v)


class V2Manager(CgroupfsManager):
    mode = "v2"

    # ------------------------------------------------------------ lifecycle
    def create(self) -> list[str]:
        """mkdir the cgroup, enable the available controllers in every ancestor's
        cgroup.subtree_control, apply linux.resources. Returns warnings. Nothing made here
        is left behind on failure."""
        res = self.linux.get("resources") or {}
        if not self.dirs:
            return list(self.notes)  # rootless, not writable: no limits were asked
        try:
            self._mkdirs()
            self._enable_controllers()
            warnings = self.notes + self._apply(res)
            self._device_filter(self.device_rules(), warnings)
            return warnings
        except BaseException:
            self._undo()
            raise

    def update(self, resources: dict) -> list[str]:
        """Apply a (partial) linux.resources to the live cgroup; new device rules replace
        the device filter."""
        self.check_before_update((resources or {}).get("memory") or {})
        warnings = self._apply(resources or {})
        if (resources or {}).get("devices") is not None:
            # A new rule list replaces the program (the old one goes once the new one is in).
            from .devices import device_rules  # loads os: not on delete's path

            linux = dict(self.linux, resources={"devices": resources["devices"]})
            self._device_filter(device_rules(linux), warnings)
        return warnings

    def _device_filter(self, rules: list[dict], warnings: list[str]) -> None:
        """Attach the eBPF program for `rules` to the container's cgroup."""
        d = self.dirs[""]
        try:
            self.fs.attach_device_filter(d, rules)
        except CgroupError as e:
            # Without CAP_SYS_ADMIN in the initial user namespace (rootless, nested in a
            # user namespace) no cgroup program can be attached: the devices the container
            # sees are then all it can reach (as runc does there).
            if e.errno == errno.EPERM and (self.rootless or _in_user_namespace()):
                warnings.append(f"{e}: device rules not enforced in a user namespace")
                return
            raise

    def _enable_controllers(self) -> None:
        d, top = self.dirs[""], self.roots.get("", "")
        below = levels_below(top, d)
        if not below:
            return
        for level in [top] + below[:-1]:
            avail = (self._opt(level, "cgroup.controllers") or "").split()
            have = set((self._opt(level, "cgroup.subtree_control") or "").split())
            missing = [c for c in avail if c not in have]
            if not missing:
                continue
            try:
                self._write(level, "cgroup.subtree_control", " ".join("+" + c for c in missing))
            except CgroupError:
                # One refused (busy, threaded, delegated partially): take what we can; a
                # limit on a missing controller then fails naming its file.
                for c in missing:
                    try:
                        self._write(level, "cgroup.subtree_control", "+" + c)
                    except CgroupError:
                        pass

    # ------------------------------------------------------------ resources
    def _apply(self, res: dict) -> list[str]:
        warnings: list[str] = []
        d = self.dirs[""]
        pids = res.get("pids")
        if pids and pids.get("limit") is not None:
            self._write(d, "pids.max", "max" if pids["limit"] < 0 else pids["limit"])
        self._memory(d, res.get("memory") or {}, warnings)
        self._io(d, res.get("blockIO") or {}, warnings)
        cpu = res.get("cpu") or {}
        self._cpu(d, cpu)
        if cpu.get("cpus"):
            self._write(d, "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            self._write(d, "cpuset.mems", cpu["mems"])
        for hl in res.get("hugepageLimits") or []:
            prefix = f"hugetlb.{hl['pageSize']}"
            self._write(d, prefix + ".max", hl["limit"])
            if self._has(d, prefix + ".rsvd.max"):
                self._write(d, prefix + ".rsvd.max", hl["limit"])
        for dev, lim in (res.get("rdma") or {}).items():
            self._write(d, "rdma.max", rdma_line(dev, lim))
        net = res.get("network") or {}
        if net.get("classID") is not None or net.get("priorities"):
            warnings.append("linux.resources.network (net_cls, net_prio) needs cgroup v1: ignored")
        self._unified(d, res.get("unified") or {})
        return warnings

    def _memory(self, d: str, mem: dict, warnings: list[str]) -> None:
        if mem.get("kernel") is not None or mem.get("kernelTCP") is not None:
            warnings.append(KERNEL_MEMORY_WARNING)
        for key, why in (
            ("swappiness", "memory.swappiness"),
            ("disableOOMKiller", "memory.disableOOMKiller"),
            ("useHierarchy", "memory.useHierarchy"),
        ):
            if mem.get(key) is not None and mem[key] not in (False, -1):
                warnings.append(f"linux.resources.{why} is not supported on cgroup v2: ignored")
        limit, swap, low = mem.get("limit") or 0, mem.get("swap") or 0, mem.get("reservation")
        if not (limit or swap or low):
            return
        v2swap = swap_to_v2(swap, limit)
        text = _num(v2swap) if v2swap else ("0" if swap > 0 else "")
        if text:
            try:
                self._write(d, "memory.swap.max", text)
            except CgroupError as e:
                # No swap accounting: "max" and "no swap" both hold already.
                if not (e.errno == errno.ENOENT and text in ("max", "0")):
                    raise
        if limit:
            self._write(d, "memory.max", _num(limit))
        if low:
            self._write(d, "memory.low", _num(low))

    def _io(self, d: str, bio: dict, warnings: list[str]) -> None:
        bfq = self._has(d, "io.bfq.weight")
        if bio.get("weight"):
            if bfq:
                self._write(d, "io.bfq.weight", bio["weight"])
            else:
                self._write(d, "io.weight", blkio_to_io_weight(bio["weight"]))
        if bio.get("leafWeight") or any(w.get("leafWeight") for w in bio.get("weightDevice") or []):
            warnings.append(
                "linux.resources.blockIO leafWeight is not supported on cgroup v2: ignored"
            )
        for wd in bio.get("weightDevice") or []:
            if wd.get("weight"):
                if not bfq:
                    warnings.append(
                        "linux.resources.blockIO.weightDevice needs the BFQ "
                        "scheduler (io.bfq.weight): ignored"
                    )
                    break
                self._write(d, "io.bfq.weight", f"{wd['major']}:{wd['minor']} {wd['weight']}")
        for key, name in (
            ("throttleReadBpsDevice", "rbps"),
            ("throttleWriteBpsDevice", "wbps"),
            ("throttleReadIOPSDevice", "riops"),
            ("throttleWriteIOPSDevice", "wiops"),
        ):
            for td in bio.get(key) or []:
                self._write(d, "io.max", f"{td['major']}:{td['minor']} {name}={td['rate']}")

    def _cpu(self, d: str, cpu: dict) -> None:
        if cpu.get("realtimeRuntime") or cpu.get("realtimePeriod"):
            raise CgroupError(
                "linux.resources.cpu.realtimeRuntime/realtimePeriod need cgroup "
                "v1 (cgroup v2 has no real-time group scheduling)"
            )
        if cpu.get("shares"):
            self._write(d, "cpu.weight", shares_to_weight(cpu["shares"]))
        quota, period, burst = cpu.get("quota"), cpu.get("period") or 0, cpu.get("burst")
        burst_later = False
        if burst is not None:
            try:
                self._write(d, "cpu.max.burst", burst)
            except CgroupError as e:
                # A burst over the old quota is EINVAL: set it again after the quota.
                if e.errno != errno.EINVAL or not quota:
                    raise
                burst_later = True
        if quota or period:
            if quota:
                text = "max" if quota < 0 else str(quota)
            else:
                # Only the period changes: keep the quota the cgroup has.
                text = (self._opt(d, "cpu.max") or "max").split()[0]
            if period:
                text += f" {period}"
            self._write(d, "cpu.max", text)
            if burst_later:
                self._write(d, "cpu.max.burst", burst)
        if cpu.get("idle") is not None:
            self._write(d, "cpu.idle", cpu["idle"])

    def _unified(self, d: str, unified: dict) -> None:
        for key, value in unified.items():
            if "/" in key or key in ("", ".", ".."):
                raise CgroupError(f'unified resource "{key}" must be a file name (no slashes)')
            try:
                for line in str(value).splitlines() or [""]:
                    self._write(d, key, line)
            except CgroupError as e:
                if e.errno in (errno.EPERM, errno.ENOENT, errno.EACCES):
                    ctrl, dot, _ = key.partition(".")
                    if not dot:
                        raise CgroupError(
                            f'unified resource "{key}" must be in the form CONTROLLER.PARAMETER'
                        ) from None
                    avail = (self._opt(d, "cgroup.controllers") or "").split()
                    if ctrl != "cgroup" and ctrl not in avail:
                        raise CgroupError(
                            f'unified resource "{key}" can\'t be set: controller '
                            f'"{ctrl}" not available'
                        ) from None
                raise

    # ------------------------------------------------------------ freezer, kill
    def _main_dir(self) -> str | None:
        return self.dirs.get("")

    def can_freeze(self) -> bool:
        return self._has(self.dirs[""], "cgroup.freeze")

    def freeze(self) -> None:
        d = self.dirs[""]
        if not self._has(d, "cgroup.freeze"):
            raise CgroupError("freezer not supported: cgroup.freeze is missing")
        self._write(d, "cgroup.freeze", 1)
        if not self.fs.wait_for(os.path.join(d, "cgroup.events"), "frozen", "1", 10.0):
            self._write(d, "cgroup.freeze", 0)
            raise CgroupError("timeout of 10s reached waiting for the cgroup to freeze")

    def thaw(self) -> None:
        d = self.dirs[""]
        if self._has(d, "cgroup.freeze"):
            self._write(d, "cgroup.freeze", 0)
            self.fs.wait_for(os.path.join(d, "cgroup.events"), "frozen", "0", 1.0)

    def frozen_now(self) -> bool:
        d = self.dirs.get("")
        if not d:  # skipped (rootless, no delegation): nothing of ours can be frozen
            return False
        return flat_keyed(self._opt(d, "cgroup.events") or "").get("frozen") == "1"

    def state(self) -> str:
        d = self.dirs[""]
        if (self._opt(d, "cgroup.freeze") or "0").strip() != "1":
            return "THAWED"
        ok = self.fs.wait_for(os.path.join(d, "cgroup.events"), "frozen", "1", 1.0)
        return "FROZEN" if ok else "THAWED"

    def kill_all(self, sig: int) -> None:
        d = self.dirs[""]
        if sig == SIGKILL and self._has(d, "cgroup.kill"):
            self._write(d, "cgroup.kill", 1)  # atomic, fork races included (Linux 5.14)
            return
        super().kill_all(sig)

    # ------------------------------------------------------------ reading
    def memory_usage(self) -> int:
        return to_int(self._opt(self.dirs[""], "memory.current"))

    def oom_count(self) -> int:
        return to_int(flat_keyed(self._opt(self.dirs[""], "memory.events") or "").get("oom_kill"))

    def stats(self) -> dict:
        from .stats import v2_stats  # loads os: the stats reader only

        return v2_stats(self)
