"""The cgroup v2 device filter compiler (ocirun/cgroups/ebpf.py), without root: programs are
checked for what the kernel's verifier demands of their shape and run in the emulator."""

from __future__ import annotations

import os
import struct

import pytest
from bpftestlib import attached, emulate

from ocirun.cgroups import CgroupError, common, ebpf, open_manager
from ocirun.cgroups.devices import device_rules

_CONDITIONAL = {ebpf.JNE_K, ebpf.JEQ_K, ebpf.JSET_K}


def check_shape(prog):
    """What the verifier's first pass (check_cfg) refuses: a jump out of the program, an
    instruction no path reaches, a path that falls off the end; and r0 set before exit."""
    n = len(prog)
    assert 0 < n <= 4096
    seen, todo = set(), [0]
    while todo:
        pc = todo.pop()
        if pc in seen:
            continue
        assert 0 <= pc < n, f"jump or fall-through out of the program to {pc}"
        seen.add(pc)
        code, _dst, _src, off, _imm = prog[pc]
        if code == ebpf.EXIT:
            assert prog[pc - 1][0] == ebpf.MOV64_K and prog[pc - 1][1] == ebpf.R0
            continue
        if code == ebpf.JA:
            todo.append(pc + 1 + off)
        elif code in _CONDITIONAL:
            assert off >= 0  # no loops
            todo += [pc + 1, pc + 1 + off]
        else:
            todo.append(pc + 1)
    assert seen == set(range(n)), f"unreachable instructions: {sorted(set(range(n)) - seen)}"


def rule(allow, t, major, minor, access):
    return {"allow": allow, "type": t, "major": major, "minor": minor, "access": access}


def allowed(rules, *access):
    prog = ebpf.compile_rules(rules)
    check_shape(prog)
    return emulate(prog, *access)


DEFAULTS = device_rules({})


@pytest.mark.parametrize(
    "access,want",
    [
        (("c", 1, 3, "rw"), True),  # /dev/null
        (("c", 1, 3, "rwm"), True),
        (("c", 1, 5, "r"), True),  # /dev/zero
        (("c", 1, 9, "r"), True),  # /dev/urandom
        (("c", 5, 0, "rw"), True),  # /dev/tty
        (("c", 5, 2, "rw"), True),  # /dev/ptmx
        (("c", 136, 7, "rw"), True),  # /dev/pts/7
        (("c", 10, 200, "rw"), True),  # /dev/net/tun
        (("c", 1, 1, "r"), False),  # /dev/mem
        (("c", 1, 1, "m"), True),  # mknod of anything is allowed, opening it is not
        (("b", 8, 0, "m"), True),
        (("b", 8, 0, "r"), False),  # /dev/sda
        (("b", 1, 3, "r"), False),  # a block device numbered like /dev/null
        (("c", 4, 1, "w"), False),  # /dev/tty1
    ],
)
def test_runc_defaults(access, want):
    assert allowed(DEFAULTS, *access) is want


def test_first_insns_read_the_context():
    prog = ebpf.compile_rules(DEFAULTS)
    code = ebpf.assemble(prog)
    assert len(code) == 8 * len(prog)
    # r2 = *(u32 *)(r1 + 0): dst 2 in the low nibble on this (little-endian) host
    assert struct.unpack_from("=BBhi", code, 0) == (0x61, 0x12, 0, 0)
    assert prog[-1] == (ebpf.EXIT, 0, 0, 0, 0)


def test_last_match_wins():
    deny_all = rule(False, "a", -1, -1, "rwm")
    rules = [deny_all, rule(True, "c", 1, -1, "rwm"), rule(False, "c", 1, 1, "rwm")]
    assert allowed(rules, "c", 1, 3, "rw")
    assert not allowed(rules, "c", 1, 1, "r")
    # and the other way round: a later allow overrides an earlier deny
    rules = [deny_all, rule(False, "c", 1, 1, "rwm"), rule(True, "c", 1, -1, "rwm")]
    assert allowed(rules, "c", 1, 1, "r")


def test_each_access_bit_needs_its_own_allow():
    rules = [
        rule(False, "a", -1, -1, "rwm"),
        rule(True, "c", 1, 3, "r"),
        rule(True, "c", -1, -1, "w"),
    ]
    assert allowed(rules, "c", 1, 3, "r")
    assert allowed(rules, "c", 1, 3, "rw")  # r from one rule, w from the other
    assert not allowed(rules, "c", 1, 3, "rwm")  # m from none
    assert not allowed(rules, "c", 1, 4, "rw")


def test_partial_deny_after_allow():
    rules = [
        rule(False, "a", -1, -1, "rwm"),
        rule(True, "c", 1, 3, "rwm"),
        rule(False, "c", 1, 3, "w"),
    ]
    assert allowed(rules, "c", 1, 3, "r")
    assert not allowed(rules, "c", 1, 3, "w")
    assert not allowed(rules, "c", 1, 3, "rw")
    assert allowed(rules, "c", 1, 3, "m")


def test_allow_all_then_deny_one():
    rules = [
        rule(False, "a", -1, -1, "rwm"),
        rule(True, "a", -1, -1, "rwm"),
        rule(False, "b", 8, -1, "rw"),
    ]
    prog = ebpf.compile_rules(rules)
    # the deny-all before the allow-all can't matter: it is not compiled at all
    assert prog == ebpf.compile_rules(rules[1:])
    assert len(prog) == 6 + 5 + 1 + 2  # prologue, the deny (2 tests + 4), the allow-all (2)
    assert allowed(rules, "c", 1, 1, "rw")
    assert allowed(rules, "b", 8, 0, "m")
    assert not allowed(rules, "b", 8, 16, "r")


def test_only_deny_all():
    rules = [rule(False, "a", -1, -1, "rwm")]
    assert ebpf.compile_rules(rules)[-2:] == [(ebpf.MOV64_K, 0, 0, 0, 0), (ebpf.EXIT, 0, 0, 0, 0)]
    assert not allowed(rules, "c", 1, 3, "r")
    assert not allowed([], "c", 1, 3, "r")  # no rule at all: nothing is allowed


def test_type_wildcard_and_major_only():
    rules = [rule(False, "a", -1, -1, "rwm"), rule(True, "a", 7, -1, "r")]
    assert allowed(rules, "b", 7, 0, "r") and allowed(rules, "c", 7, 99, "r")
    assert not allowed(rules, "b", 7, 0, "w") and not allowed(rules, "b", 8, 0, "r")
    rules = [rule(False, "a", -1, -1, "rwm"), rule(True, "b", -1, 5, "rwm")]
    assert allowed(rules, "b", 3, 5, "rw") and not allowed(rules, "c", 3, 5, "r")


def test_config_rules_come_before_the_defaults():
    linux = {
        "resources": {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "b", "major": 254, "minor": 0, "access": "r"},
                {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            ]
        }
    }
    rules = device_rules(linux)
    assert allowed(rules, "b", 254, 0, "r")
    assert not allowed(rules, "b", 254, 0, "w")
    # runc appends its defaults after the config's rules: /dev/null is allowed again
    assert allowed(rules, "c", 1, 3, "rw")


def test_many_rules_and_limits():
    rules = [rule(False, "a", -1, -1, "rwm")] + [
        rule(True, "c", 100 + i, i, "rw") for i in range(300)
    ]
    assert allowed(rules, "c", 399, 299, "rw") and not allowed(rules, "c", 399, 298, "r")
    with pytest.raises(CgroupError, match="too many device rules"):
        ebpf.compile_rules([rule(True, "c", i, i, "r") for i in range(2000)])
    with pytest.raises(CgroupError, match="invalid cgroup device access"):
        ebpf.compile_rules([rule(True, "c", 1, 3, "rx")])
    with pytest.raises(CgroupError, match="invalid cgroup device type"):
        ebpf.compile_rules([rule(True, "p", 1, 3, "r")])
    with pytest.raises(CgroupError, match="invalid device number"):
        ebpf.compile_rules([rule(True, "c", 2**32, 3, "r")])


class Recording(common.FS):
    """cgroupfs played by a directory tree; the device filter is recorded, not loaded."""

    KNOBS = ("cgroup.controllers", "cgroup.subtree_control", "memory.max", "memory.swap.max")

    def __init__(self):
        self.filters = []

    def mkdir(self, path):
        super().mkdir(path)
        for name in self.KNOBS:
            open(f"{path}/{name}", "w").close()

    def attach_device_filter(self, d, rules):
        self.filters.append((d, rules))


def test_v2_manager_attaches_the_rules_on_create_and_update(tmp_path):
    root = str(tmp_path)
    fs = Recording()
    for name in fs.KNOBS:
        open(f"{root}/{name}", "w").close()
    mountinfo = f"30 1 0:26 / {root} rw - cgroup2 cgroup2 rw\n"
    linux = {
        "cgroupsPath": "/t",
        "resources": {
            "devices": [{"allow": True, "type": "c", "major": 1, "minor": 1, "access": "r"}]
        },
    }
    m = open_manager(linux, "c1", root=root, mountinfo=mountinfo, self_cgroup="0::/\n", fs=fs)
    m.create()
    assert fs.filters == [(f"{root}/t", device_rules(linux))]
    assert allowed(fs.filters[0][1], "c", 1, 1, "r")
    m.update({"memory": {"limit": 1 << 20}})
    assert len(fs.filters) == 1  # no devices in the update: the program stays
    m.update({"devices": []})
    assert fs.filters[1] == (f"{root}/t", device_rules({}))
    assert not allowed(fs.filters[1][1], "c", 1, 1, "r")


def _cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.split()[:1] == ["cgroup2"]:
                return pre.split()[4]
    return None


@pytest.mark.skipif(
    os.geteuid() != 0 or _cgroup2_mount() is None,
    reason="needs root and a cgroup2 mount (v2 or hybrid)",
)
def test_the_kernel_loads_attaches_replaces_and_enforces_the_program():
    """The compiled program through the verifier and onto a real cgroup2 directory (the
    unified tree of a hybrid host will do): /dev/zero denied, then allowed by a replacement."""
    import subprocess
    import uuid

    d = f"{_cgroup2_mount()}/ocirun-ebpf-{uuid.uuid4().hex[:8]}"
    os.mkdir(d)

    def read_zero():
        return subprocess.run(
            ["/bin/sh", "-c", f"echo $$ > {d}/cgroup.procs && exec head -c1 /dev/zero"],
            capture_output=True,
        )

    try:
        deny_zero = DEFAULTS + [rule(False, "c", 1, 5, "r")]
        assert ebpf.attach(d, deny_zero) == 0
        [first] = attached(d)
        r = read_zero()
        assert r.returncode != 0 and b"Operation not permitted" in r.stderr, r
        assert ebpf.attach(d, DEFAULTS) == 1  # the first one was detached
        assert attached(d) != [first] and len(attached(d)) == 1
        assert read_zero().stdout == b"\0"
    finally:
        os.rmdir(d)
