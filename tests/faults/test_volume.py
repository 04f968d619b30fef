"""Leaks at volume: many `run`s one after another and at concurrency 8 — zero failures, and
afterwards the host's mounts (under the rootfs, the root, the bundle: others' tests may
mount elsewhere meanwhile), the state root, the cache (one entry per distinct config, no
temporaries) and our own fds as they were; every container saw only fds 0-2 (plus the one
`ls` opens), so the runtime leaked none into it. The issue's sizes by default (300 + 100);
OCIRUN_FAULTS=full ten times that."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from faultlib import FULL, cache_temporaries, call, count, leftovers, mounts, uid
from testenv import ROOTFS

SEQUENTIAL = 3000 if FULL else 300
CONCURRENT = 1000 if FULL else 100


def cache_entries() -> list[str]:
    top = os.environ["OCIRUN_CACHE_DIR"]
    return sorted(os.path.join(d, n) for d, _, files in os.walk(top) for n in files)


def test_runs_leave_nothing(rt, make_bundle):
    bundle = make_bundle(args=["ls", "/proc/self/fd"])
    first = call(rt, "run", "--bundle", bundle, uid("warm"))  # fills the config cache
    assert first.returncode == 0 and first.stdout.split() == ["0", "1", "2", "3"], first

    def ours():
        return [m for m in mounts() if m.startswith((str(ROOTFS), rt.root, bundle))]

    before = dict(
        mounts=ours(),
        cache=cache_entries(),
        fds=sorted(os.listdir("/proc/self/fd")),
        root=sorted(os.listdir(rt.root)),
    )
    ids = []

    def one(i: int) -> str:
        cid = uid(f"v{i}")
        ids.append(cid)
        r = call(rt, "run", "--bundle", bundle, cid)
        if r.returncode != 0 or r.stdout.split() != ["0", "1", "2", "3"]:
            return f"{cid}: rc {r.returncode}, saw fds {r.stdout.split()}: {r.stderr.strip()}"
        return ""

    failures = [f for f in map(one, range(SEQUENTIAL)) if f]
    with ThreadPoolExecutor(8) as pool:
        failures += [f for f in pool.map(one, range(SEQUENTIAL, SEQUENTIAL + CONCURRENT)) if f]
    count("containers run", len(ids) + 1)
    count("container runs that failed", len(failures))
    assert failures == [], f"{len(failures)} failed, e.g. {failures[:3]}"
    after = dict(
        mounts=ours(),
        cache=cache_entries(),
        fds=sorted(os.listdir("/proc/self/fd")),
        root=sorted(os.listdir(rt.root)),
    )
    assert after == before, {
        k: (sorted(set(before[k]) - set(after[k])), sorted(set(after[k]) - set(before[k])))
        for k in before
        if before[k] != after[k]
    }

    assert cache_temporaries() == []
    left = leftovers(rt, ids)  # cgroups named after every id, processes, state dirs
    count("containers that left something", bool(left))
    assert not left, left
