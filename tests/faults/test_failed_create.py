"""A create that fails after a hook put a process into the container's cgroups (some v1
hierarchies only): the undo killed the init only, could not remove the cgroups, removed the
state dir, and left the process and its cgroups with no record (found by gc's tags). Now the
undo kills everything in any of the container's cgroups; nothing is left."""

from __future__ import annotations

from faultlib import call, cgroups_named, count, leftovers, mounts, one_line, own_cgroup, uid


def test_a_failed_create_kills_what_its_hooks_put_in_its_cgroups(rt, make_bundle):
    before = mounts()
    cid = uid("hooked")
    move = " ".join(f"echo $! > /sys/fs/cgroup/{h}/{cid}/cgroup.procs;" for h in ("pids", "memory"))

    def mutate(c):
        own_cgroup(cid)(c)
        c["hooks"] = {
            "createRuntime": [
                {
                    "path": "/bin/sh",
                    "args": [
                        "sh",
                        "-c",
                        f"setsid sleep 600 </dev/null >/dev/null 2>&1 & {move} exit 3",
                    ],
                }
            ]
        }

    r = call(rt, "create", "--bundle", make_bundle(args=["true"], mutate=mutate), cid)
    one_line(r, "createRuntime hook #0", "exit status 3")
    assert cgroups_named(cid) == []
    assert not leftovers(rt, [cid], before)
    assert call(rt, "gc", "--dry-run").stdout == ""
    count("containers run")
