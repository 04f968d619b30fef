"""The process's part of the plan: its `process` section (argv, env, user, rlimits,
scheduling, memory policy, personality), its capabilities and no_new_privs (`security`),
its oom score (`kernel`), and the init's hooks (`hooks`); and `process_with_exec_flags`,
exec's flags merged into the container's process (runc's rules). Pure: called by
plan.build and build_exec.
"""

from __future__ import annotations

from ._lean import Sequence
from .defaults import DEFAULT_PATH
from .plan_records import ALL_CAPS, Plan
from .tables import CAPS, RLIMITS


def _copy_json(value):
    """A deep copy of parsed JSON (dicts, lists, scalars); copy.deepcopy costs ~1 ms to
    import on exec's hot path."""
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


def process_with_exec_flags(
    base: dict,
    args: list[str],
    *,
    env: Sequence[str] = (),
    cwd: str | None = None,
    user: str | None = None,
    additional_gids: Sequence[int] = (),
    caps: Sequence[str] = (),
    no_new_privs: bool = False,
    tty: bool = False,
) -> dict:
    """The process `exec` runs without --process: the container's, with the flags on top
    (runc's rules: -e overrides by name, --cap adds to bounding/effective/permitted)."""
    from .errors import UsageError

    proc = _copy_json(base)
    proc["args"] = list(args)
    proc["terminal"] = tty
    if env:
        names = {e.split("=", 1)[0] for e in env}
        proc["env"] = [e for e in proc.get("env") or [] if e.split("=", 1)[0] not in names]
        proc["env"] += list(env)
    if cwd:
        proc["cwd"] = cwd
    if user:
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise UsageError(f"invalid --user {user!r}: use UID[:GID] (numbers)")
        proc["user"] = dict(proc.get("user") or {}, uid=int(uid))
        if gid:
            proc["user"]["gid"] = int(gid)
    if additional_gids:
        proc.setdefault("user", {})["additionalGids"] = [int(g) for g in additional_gids]
    if caps:
        sets = proc.setdefault("capabilities", {})
        for name in ("bounding", "effective", "permitted"):
            have = sets.setdefault(name, [])
            have += [c for c in caps if c not in have]
    if no_new_privs:
        proc["noNewPrivileges"] = True
    return proc


def dedup_env(env: Sequence[str]) -> list[str]:
    """process.env as runc sets it (os.Setenv for each, in order): a name given twice is
    there once, where it first appeared, with its last value."""
    out: list[str] = []
    where: dict[str, int] = {}
    for kv in env:
        name = kv.split("=", 1)[0]
        if name in where:
            out[where[name]] = kv
        else:
            where[name] = len(out)
            out.append(kv)
    return out


def plan_process(plan: Plan, proc: dict, cap_bounding: int = ALL_CAPS) -> None:
    plan.process.argv = list(proc["args"])
    # An empty HOME counts as none (runc): the one from /etc/passwd replaces it.
    plan.process.envp = [kv for kv in dedup_env(proc.get("env") or []) if kv != "HOME="]
    # argv[0] is looked up in process.env's PATH, else in the default one (as runc's Go).
    plan.process.path_env = DEFAULT_PATH[len("PATH=") :]
    for kv in plan.process.envp:
        if kv.startswith("PATH="):
            plan.process.path_env = kv[5:]
    # As runc and crun: HOME from the container's /etc/passwd, read by the init (the file
    # is the one the container sees, after its mounts).
    plan.process.home_from_passwd = not any(kv.startswith("HOME=") for kv in plan.process.envp)
    plan.process.cwd = proc.get("cwd") or "/"
    user = proc.get("user") or {}
    plan.process.uid = int(user.get("uid", 0))
    plan.process.gid = int(user.get("gid", 0))
    plan.process.groups = [int(g) for g in user.get("additionalGids") or []]
    if user.get("umask") is not None:
        plan.process.umask = int(user["umask"]) & 0o777  # all umask(2) takes of it (as runc)
    plan.process.rlimits = [
        (RLIMITS[r["type"]], int(r["soft"]), int(r["hard"])) for r in proc.get("rlimits") or []
    ]
    plan.security.no_new_privs = bool(proc.get("noNewPrivileges"))
    plan.process.terminal = bool(proc.get("terminal"))
    size = proc.get("consoleSize") or {}
    plan.process.console_rows, plan.process.console_cols = (
        int(size.get("height", 0)),
        int(size.get("width", 0)),
    )
    if proc.get("oomScoreAdj") is not None:
        plan.kernel.oom_score_adj = str(int(proc["oomScoreAdj"]))
    _scheduling(plan, proc)
    # As runc: no capabilities object means no capabilities (every set empty), not the
    # runtime's own (root's) set.
    plan.security.caps = _capabilities(proc.get("capabilities") or {}, cap_bounding, plan.warnings)


def _cap_names(mask: int) -> str:
    return ", ".join(n for n, bit in CAPS.items() if mask >> bit & 1)


def _capabilities(caps: dict, bounding: int, warnings: list[str]) -> dict[str, int]:
    """The five sets as bit masks. What cannot be granted is left out with a warning, not a
    failure (runtime-spec config.md; runc): unknown names, capabilities outside the
    runtime's own bounding set (`bounding`), and ambient ones missing from permitted or
    inheritable (runc spec's default lists three such), which the kernel refuses to raise."""
    masks, unknown = {}, []
    for name in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        mask = 0
        for c in caps.get(name) or []:
            if c in CAPS:
                mask |= 1 << CAPS[c]
            elif c not in unknown:
                unknown.append(c)
        masks[name] = mask
    if unknown:  # runc's words (a Go slice of the sorted names)
        warnings.append(
            f"ignoring unknown or unavailable capabilities: [{' '.join(sorted(unknown))}]"
        )
    missing = 0
    for name, mask in masks.items():
        missing |= mask & ~bounding
        masks[name] = mask & bounding
    if missing:
        warnings.append(
            "ignoring capabilities outside the runtime's bounding set: " + _cap_names(missing)
        )
    raisable = masks["ambient"] & masks["permitted"] & masks["inheritable"]
    if masks["ambient"] != raisable:
        # what the kernel says to PR_CAP_AMBIENT_RAISE, in runc's words, one per capability
        refused = masks["ambient"] & ~raisable
        for c in dict.fromkeys(caps.get("ambient") or []):
            if c in CAPS and (refused >> CAPS[c]) & 1:
                warnings.append(f"can't raise ambient capability {c}: operation not permitted")
        masks["ambient"] = raisable
    return masks


def cpu_mask(spec: str) -> bytes:
    """A cpu_set_t for a list like "0-3,6" (runtime-spec execCPUAffinity)."""
    cpus: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    size = max(8, (max(cpus, default=0) // 64 + 1) * 8)
    mask = bytearray(size)
    for c in cpus:
        mask[c // 8] |= 1 << (c % 8)
    return bytes(mask)


# Without execCPUAffinity.final the process may run on every CPU its cgroup allows, not just
# where the runtime happened to be pinned (runc >= 1.3.1); the kernel trims to the cpuset.
ALL_CPUS = b"\xff" * 128


def _scheduling(plan: Plan, proc: dict) -> None:
    from .tables import IOPRIO_CLASS_SHIFT, IOPRIO_CLASSES, SCHED_FLAGS, SCHED_POLICIES

    sched = proc.get("scheduler")
    if sched:
        flags = 0
        for f in sched.get("flags") or []:
            flags |= SCHED_FLAGS[f]
        plan.process.sched = (
            SCHED_POLICIES[sched["policy"]],
            int(sched.get("nice", 0)),
            int(sched.get("priority", 0)),
            flags,
            int(sched.get("runtime", 0)),
            int(sched.get("deadline", 0)),
            int(sched.get("period", 0)),
        )
    io = proc.get("ioPriority")
    if io:
        plan.process.ioprio = IOPRIO_CLASSES[io["class"]] << IOPRIO_CLASS_SHIFT | int(
            io.get("priority", 0)
        )
    aff = proc.get("execCPUAffinity") or {}
    if aff.get("initial"):
        plan.process.cpu_initial = cpu_mask(aff["initial"])
    plan.process.cpu_final = cpu_mask(aff["final"]) if aff.get("final") else ALL_CPUS


def plan_personality(plan: Plan, linux: dict) -> None:
    """linux.personality (runtime-spec: linux's, not process's; flags: none defined yet)."""
    pers = linux.get("personality")
    if pers:
        from .tables import PERSONALITIES

        plan.process.personality = PERSONALITIES[pers["domain"]]


def plan_memory_policy(plan: Plan, linux: dict) -> None:
    from .tables import MPOL_FLAGS, MPOL_MODES

    mp = linux.get("memoryPolicy")
    if not mp:
        return
    mode = MPOL_MODES[mp["mode"]]
    for f in mp.get("flags") or []:
        mode |= MPOL_FLAGS[f]
    nodes = mp.get("nodes") or ""
    plan.process.mempolicy = (mode, cpu_mask(nodes) if nodes else b"")


# --- hooks --------------------------------------------------------------------------------


def plan_hooks(plan: Plan, hooks: dict) -> None:
    def entries(kind: str):
        return [
            (
                h["path"],
                list(h.get("args") or [h["path"]]),
                list(h.get("env") or []),
                int(h.get("timeout") or 0),
            )
            for h in hooks.get(kind) or []
        ]

    plan.hooks.create = entries("createContainer")
    plan.hooks.start = entries("startContainer")
    # The init stops before pivot_root so that the parent can run prestart/createRuntime
    # and fill in the state the init's own hooks read on stdin.
    plan.hooks.sync = any(
        hooks.get(k) for k in ("prestart", "createRuntime", "createContainer", "startContainer")
    )
