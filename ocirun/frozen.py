"""Records that freeze: the plan and its sections (plan_records.py) are built field by field
by the planner, then `freeze()` makes them read-only, deeply, before anything executes
them.
"""

from __future__ import annotations

from ._lean import Record


class FrozenDict(dict):
    """A dict that refuses changes (the capability masks of a frozen plan)."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("the plan is frozen (set it in plan.build)")

    __setitem__ = __delitem__ = __ior__ = _refuse  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]


def _deep_frozen(value):
    """`value` as a frozen plan holds it: lists (and the lists in tuples) become tuples,
    dicts FrozenDicts, records are frozen in place."""
    if isinstance(value, (list, tuple)):
        return tuple(_deep_frozen(v) for v in value)
    if isinstance(value, dict):
        return FrozenDict(value)
    if isinstance(value, Section):
        value.freeze()
    return value


def _refuse(self, name: str, value=None) -> None:
    raise AttributeError(f"the plan is frozen (set {name} in plan.build)")


class Section(Record):
    """A record of the plan that `freeze` makes read-only, deeply. Its fields are the
    subclass's __slots__ (`_fields`). Freezing visits only the fields that can change in
    place, as the subclass names them (tests/unit/test_plan.py checks none is left out):
    `_lists` hold lists of immutable items, made tuples; `_deep` hold records, dicts, or
    lists of them, frozen all the way down. Then the record becomes its class's frozen
    twin (same slots, same name, equal to a thawed record with the same fields), whose
    __setattr__ refuses: until then, setting a field costs nothing more than on any
    record (a __setattr__ checking a mark on every field set, and a walk of every field,
    made a build 0.05-0.15 ms slower)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _lists: tuple[str, ...] = ()
    _deep: tuple[str, ...] = ()
    _frozen = False
    _thawed: type = Record

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "_frozen" not in cls.__dict__:  # not a frozen twin: those keep their class's
            cls._fields, cls._thawed = cls.__slots__, cls

    @classmethod
    def _twin(cls) -> type:
        """The frozen twin of this class, made once, when a record of it is first frozen
        (a class costs ~5 us to make: a plan without id maps or net devices needs none of
        theirs)."""
        twin = cls.__dict__.get("_frozen_twin")
        if twin is None:
            namespace = {
                "__slots__": (),
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "_frozen": True,
                "__setattr__": _refuse,
                "__delattr__": _refuse,
            }
            twin = type(cls.__name__, (cls,), namespace)
            type.__setattr__(cls, "_frozen_twin", twin)
        return twin

    def freeze(self) -> None:
        if self._frozen:
            return
        for name in self._lists:
            setattr(self, name, tuple(getattr(self, name)))
        for name in self._deep:
            setattr(self, name, _deep_frozen(getattr(self, name)))
        object.__setattr__(self, "__class__", self._twin())

    def __eq__(self, other):
        return getattr(other, "_thawed", None) is self._thawed and all(
            getattr(self, k) == getattr(other, k) for k in self._fields
        )

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields)
        return f"{type(self).__name__}({args})"
