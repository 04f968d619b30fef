"""Hypothesis strategies for config.json: generated values (wrong types, huge numbers, odd
strings, `..` paths) put into, or taken from, a rich valid config; then encoded with
byte-level damage (invalid UTF-8, truncation, duplicate keys, deep nesting)."""

from __future__ import annotations

import copy
import json
import os

from hypothesis import strategies as st
from testenv import BASE_CONFIG, REPO

FULL = os.environ.get("OCIRUN_FAULTS", "") == "full"


def schema_keys() -> list[str]:
    """Every property name the runtime-spec schemas know."""
    keys = set()

    def walk(node):
        if isinstance(node, dict):
            keys.update(
                node.get("properties", {}) if isinstance(node.get("properties"), dict) else ()
            )
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    sdir = REPO / "ocirun" / "schemas"
    for name in os.listdir(sdir):
        walk(json.loads((sdir / name).read_text()))
    return sorted(keys)


KEYS = schema_keys()


def rich_config() -> dict:
    """The busybox config with most sections filled in (each valid), for mutations to reach
    the code behind them."""
    c = json.loads(BASE_CONFIG.read_text())
    c["process"]["args"] = ["true"]
    linux = c.setdefault("linux", {})
    linux["resources"] = {
        "memory": {"limit": 64 << 20, "reservation": 32 << 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 64},
        "devices": [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        ],
    }
    linux["sysctl"] = {"net.ipv4.ip_forward": "0", "kernel.msgmax": "8192"}
    linux["devices"] = [
        {
            "path": "/dev/fuse",
            "type": "c",
            "major": 10,
            "minor": 229,
            "fileMode": 0o666,
            "uid": 0,
            "gid": 0,
        }
    ]
    linux["personality"] = {"domain": "LINUX"}
    linux["maskedPaths"] = ["/proc/kcore", "/sys/firmware"]
    linux["readonlyPaths"] = ["/proc/sys", "/proc/bus"]
    linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {
                "names": ["getppid", "mkdirat"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 1,
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}],
            }
        ],
    }
    c["mounts"].append(
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "size=1m", "mode=1777"],
        }
    )
    c["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["rbind", "ro"]}
    )
    c["hooks"] = {"prestart": [{"path": "/bin/true", "args": ["true"], "timeout": 5}]}
    c["process"]["rlimits"].append({"type": "RLIMIT_NPROC", "hard": 100, "soft": 100})
    c["process"]["oomScoreAdj"] = 100
    c["process"]["user"]["additionalGids"] = [1, 2]
    c["process"]["user"]["umask"] = 0o22
    c["process"]["scheduler"] = {"policy": "SCHED_OTHER", "nice": 1, "priority": 0}
    c["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 4}
    c["process"]["execCPUAffinity"] = {"initial": "0", "final": "0-1"}
    c["annotations"] = {"org.example": "x"}
    c["domainname"] = "example"
    return c


RICH = rich_config()

ODD_STRINGS = [
    "",
    ".",
    "..",
    "../..",
    "/..",
    "/../../etc/shadow",
    "a/../../b",
    "/proc/../..",
    "/",
    "//",
    "\x00",
    "a\x00b",
    "\n",
    "\ud800",
    "\udfff\ud800",
    "é",
    "\u202e",
    "a" * 5000,
    "/" + "a/" * 2000,
    "rw",
    "ro",
    "bind",
    "rbind",
    "tmpfs",
    "proc",
    "cgroup",
    "/dev/null",
    "/proc/self/fd/0",
    "CAP_SYS_ADMIN",
    "CAP_NOPE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_KILL",
    "SCMP_ARCH_X86_64",
    "RLIMIT_NOFILE",
    "-1",
    "0x10",
    "1e400",
    "system.slice:ocirun:x",
    "/sys/fs/cgroup/../x",
    "size=1e20",
    "mode=99999",
    "uid=-1",
    "nosuid",
    "idmap",
    "ridmap",
    "recursive",
]
ODD_INTS = [
    0,
    -1,
    1,
    2**31 - 1,
    2**31,
    2**32,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    2**64 + 1,
    -(2**63),
    -(2**63) - 1,
    10**30,
    10**400,
]

strings = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=12), st.sampled_from(KEYS))
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(ODD_INTS),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    strings,
)
values = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), strings), kids, max_size=4),
    ),
    max_leaves=10,
)


def _slots(node, out, depth=0):
    """Every (container, key) in the tree: places a mutation can act on."""
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((node, k))
            _slots(v, out, depth + 1)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((node, i))
            _slots(v, out, depth + 1)
    return out


@st.composite
def configs(draw) -> dict:
    """RICH with 1-4 mutations: a value replaced (by a generated one or another part of the
    config), a key deleted or added, a list grown, a value wrapped in a list."""
    cfg = copy.deepcopy(RICH)
    for _ in range(draw(st.integers(1, 4))):
        slots = _slots(cfg, [])
        holder, key = draw(st.sampled_from(slots))
        op = draw(
            st.sampled_from(
                [
                    "replace",
                    "replace",
                    "transplant",
                    "delete",
                    "add",
                    "grow",
                    "wrap",
                    "leaf",
                    "leaf",
                    "leaf",
                ]
            )
        )
        if op == "leaf":  # the same type, an odd value: the structure stays valid
            leaves_of = [(h, k) for h, k in slots if isinstance(h[k], (str, int))]
            holder, key = draw(st.sampled_from(leaves_of))
            old = holder[key]
            if isinstance(old, bool) or not isinstance(old, (str, int)):
                holder[key] = not old
            elif isinstance(old, int):
                holder[key] = draw(st.one_of(st.sampled_from(ODD_INTS), st.integers()))
            else:
                odd = draw(st.sampled_from(ODD_STRINGS))
                at = draw(st.integers(0, len(old)))
                holder[key] = draw(st.sampled_from([odd, old[:at] + odd + old[at:]]))
        elif op == "replace":
            holder[key] = draw(values)
        elif op == "transplant":
            other, okey = draw(st.sampled_from(slots))
            holder[key] = copy.deepcopy(other[okey])
        elif op == "delete":
            del holder[key]
        elif op == "add":
            target = holder[key] if isinstance(holder[key], dict) else cfg
            target[draw(st.sampled_from(KEYS))] = draw(values)
        elif op == "grow" and isinstance(holder[key], list):
            holder[key].append(draw(values))
        elif op == "wrap":
            holder[key] = [holder[key]]
    return cfg


@st.composite
def config_bytes(draw) -> bytes:
    """A mutated config, encoded; sometimes damaged at the byte level."""
    cfg = draw(configs())
    text = json.dumps(cfg)
    kind = draw(
        st.sampled_from(
            ["plain", "plain", "plain", "duplicate", "utf8", "truncate", "deep", "noise"]
        )
    )
    if kind == "duplicate":  # the same key twice in the top object (a parser keeps one)
        key = draw(st.sampled_from(sorted(cfg) or ["process"]))
        text = "{" + json.dumps(key) + ": " + json.dumps(draw(values)) + ", " + text[1:]
    elif kind == "deep":
        n = draw(st.sampled_from([50, 200, 1000, 5000, 100000]))
        text = text[:-1] + ', "deep": ' + "[" * n + "]" * n + "}"
    raw = text.encode("utf-8", "surrogatepass")  # lone surrogates: invalid UTF-8
    if kind == "utf8":
        at = draw(st.integers(0, len(raw)))
        raw = (
            raw[:at]
            + draw(
                st.sampled_from(
                    [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80", b"\xf4\x90\x80\x80"]
                )
            )
            + raw[at:]
        )
    elif kind == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif kind == "noise":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(max_size=8)) + raw[at:]
    return raw
