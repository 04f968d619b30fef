"""JSON `null` in a config read the way runc reads it (Go's encoding/json).

runc decodes config.json, `exec --process` files and `update --resources` into Go structs.
A `null` member of a struct leaves the field at its zero value: a pointer, slice or map
stays nil (absent), a string, number or bool stays zero, which is what absence gives too.
So `"args": null` in a seccomp rule or `"env": null` in the process is the member not
being there, and configs written by Go tools without omitempty or by Python tools writing
None carry such members. `normalize` deletes them before validation, so the validation
cache, the plan and the state only ever see the config without them; a member the spec
REQUIRES is then reported missing, as its absence is.

Two cases are not struct members:
- members of the spec's maps (annotations, linux.sysctl, resources.unified; resources.rdma,
  linux.netDevices, linux.timeOffsets of objects): Go stores a null there as the element's
  zero value, so `{"a": null}` is `{"a": ""}` (or `{"a": {}}`), the key kept, as runc does.
- array elements: left as they are, and validation refuses them naming their path
  (docs/compat.md says why: Go would read "" or 0 or an empty object in their place).

Unknown members are walked too; nothing reads them, so their nulls do not matter.
"""

from __future__ import annotations

# Object paths (member names from the config's top, "*" for a map's element, "[]" for an
# array's) whose members are Go map elements, with their element's zero value.
_STRING = ""
_OBJECT: dict = {}
MAPS: dict[tuple[str, ...], object] = {
    ("annotations",): _STRING,
    ("linux", "sysctl"): _STRING,
    ("linux", "resources", "unified"): _STRING,
    ("linux", "resources", "rdma"): _OBJECT,
    ("linux", "netDevices"): _OBJECT,
    ("linux", "timeOffsets"): _OBJECT,
}


def normalize(value, at: tuple[str, ...] = ()) -> bool:
    """Delete the null members of every struct in `value` (in place), give null map
    elements their zero value; True when anything changed. `at` names where `value` sits
    in a config: () for config.json, ("process",) for an exec's process, ("linux",
    "resources") for update's resources."""
    changed = False
    stack = [(value, at)]
    while stack:
        v, path = stack.pop()
        if isinstance(v, dict):
            zero = MAPS.get(path)
            nulls = [k for k, sub in v.items() if sub is None]
            if nulls:
                changed = True
                for k in nulls:
                    if zero is None:
                        del v[k]
                    else:
                        v[k] = type(zero)()  # a fresh "" or {}
            for k, sub in v.items():
                if isinstance(sub, (dict, list)):
                    stack.append((sub, path + ("*" if zero is not None else k,)))
        else:  # a list: its elements, nulls included, stay
            for sub in v:
                if isinstance(sub, (dict, list)):
                    stack.append((sub, path + ("[]",)))
    return changed
