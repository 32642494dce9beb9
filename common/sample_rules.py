"""The checks of one sample against the contract (common/kinds.py and common/limits.py).

Compiled and remembered per sample shape (kind, tags, field names), because the collector
checks tens of thousands of samples a second (issue 11): what depends only on the shape is
checked once, the time and every value each time, and every refusal comes from one place,
:func:`check_value`, with its cause.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from common.kinds import KINDS, Bounds, FieldType
from common.limits import (
    BAD_TAG_CHARS,
    ID_RE,
    MAX_FIELDS_PER_SAMPLE,
    MAX_STRING_FIELD_LEN,
    MAX_TAG_VALUE_LEN,
    MAX_TAGS_PER_SAMPLE,
    MAX_TS_MS,
    MIN_TS_MS,
    NAME_RE,
    FieldValue,
    WireError,
)

TagItems = tuple[tuple[str, str], ...]
# One field's rule, compiled from its kind's declaration (the contract stays in common/kinds.py
# and common/limits.py): the values of each Python type it accepts, as cheap comparisons.
# (name, floats in [flo, fhi], ints in [ilo, ihi], bools accepted, strs up to smax characters,
#  declared type, bounds).  An empty range (flo > fhi, ilo > ihi, smax -1) accepts none; a
# value not accepted goes to check_value, the one place that says why it is refused.
FieldRule = tuple[str, float, float, int, int, bool, int, FieldType | None, Bounds | None]
FieldPlan = tuple[FieldRule, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Shape:
    """What a sample's checks depend on besides its time and values: kind, tags, field names.

    One object per shape seen (remembered, bounded), compared and hashed by identity: consumers
    key their own memos on it cheaply.
    """

    kind: str
    tags: TagItems
    plan: FieldPlan  # in the order of the sample's fields


def is_int(value: object) -> bool:
    """An int that is not a bool (JSON true is not a number here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_id(value: object) -> bool:
    """A district, school or agent id (those that passed are remembered: they repeat)."""
    if type(value) is str and value in IDS_PASSED:
        return True
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        return False
    if len(IDS_PASSED) < MEMO_MAX:
        IDS_PASSED.add(value)
    return True


def check_sample(kind: object, ts_ms: object, tags: Mapping[Any, object],
                 fields: Mapping[Any, object]) -> Shape:
    """Everything but the field values (the caller's FieldsHook checks them): their Shape."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise WireError("unknown_kind", f"kind {str(kind)[:40]!r}")
    if not is_int(ts_ms) or not MIN_TS_MS <= ts_ms <= MAX_TS_MS:  # type: ignore[operator]
        raise WireError("bad_value", f"{kind}: ts_ms out of range")
    tag_items, names = tuple(tags.items()), tuple(fields)
    try:
        shape = SHAPES.get((kind, tag_items, names))
    except TypeError:  # an unhashable tag value (a list): refused below
        shape = None
    if shape is not None:
        return shape
    if len(tags) > MAX_TAGS_PER_SAMPLE or len(fields) > MAX_FIELDS_PER_SAMPLE:
        raise WireError("too_large", f"{kind}: too many tags or fields")
    _check_tags(kind, tag_items)
    if not fields:
        raise WireError("schema", f"{kind}: no fields")
    shape = Shape(kind, cast(TagItems, tag_items), field_plan(kind, names))
    if len(SHAPES) < MEMO_MAX:
        SHAPES[(kind, tag_items, names)] = shape
    return shape


# The checks of a sample that depend only on its kind, tags and field names repeat in every
# batch of an agent: remembered once passed (the collector's hottest path, issue 11), with the
# plan of each kind's field-name set.  Bounded: a flood of new tag values only stops the
# remembering.  (Values, types, ranges and the time are checked every time.)
MEMO_MAX: Final = 65_536
SHAPES: dict[tuple[str, tuple[tuple[object, object], ...], tuple[object, ...]], Shape] = {}
IDS_PASSED: set[str] = set()
_FIELD_PLANS: dict[tuple[str, tuple[object, ...]], FieldPlan] = {}


def _check_tags(kind: str, tag_items: tuple[tuple[object, object], ...]) -> None:
    allowed = KINDS[kind].tags
    for name, value in tag_items:
        if not isinstance(name, str) or name not in allowed:
            raise WireError("bad_tag", f"{kind}: tag {str(name)[:40]!r} not allowed")
        if (not isinstance(value, str) or not 0 < len(value) <= MAX_TAG_VALUE_LEN
                or BAD_TAG_CHARS.search(value)):
            raise WireError("bad_tag", f"{kind}: tag {name} must be a short printable string")


def field_plan(kind: str, names: tuple[object, ...]) -> FieldPlan:
    """Each field name checked, with its rule (remembered per kind and names)."""
    plan = _FIELD_PLANS.get((kind, names))
    if plan is not None:
        return plan
    spec = KINDS[kind]
    for name in names:
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise WireError("bad_field", f"{kind}: field name {str(name)[:40]!r}")
    plan = tuple(_rule(cast(str, name), spec.fields.get(cast(str, name)),
                       spec.range_of(cast(str, name))) for name in names)
    if len(_FIELD_PLANS) < MEMO_MAX:
        _FIELD_PLANS[(kind, names)] = plan
    return plan


_INT64: Final = (-(2**63), 2**63 - 1)
_FINITE: Final = (-sys.float_info.max, sys.float_info.max)


def _rule(name: str, expected: FieldType | None, bounds: Bounds | None) -> FieldRule:
    """What check_value accepts for one field, per exact Python type (a subset is enough)."""
    numbers = expected in (None, "number")
    flo, fhi = (max(bounds[0], _FINITE[0]), min(bounds[1], _FINITE[1])) if bounds else _FINITE
    ilo, ihi = _INT64
    if bounds:  # an int is within [lo, hi] exactly when it is within [ceil(lo), floor(hi)]
        ilo, ihi = max(ilo, math.ceil(flo)), min(ihi, math.floor(fhi))
    if not numbers:
        flo, fhi, ilo, ihi = math.inf, -math.inf, 1, 0
    strings = MAX_STRING_FIELD_LEN if expected in (None, "string") else -1
    return (name, flo, fhi, ilo, ihi, expected in (None, "bool"), strings, expected, bounds)


def check_fields(shape: Shape, ts_ms: int, fields: Mapping[str, FieldValue]) -> None:
    """Check a sample's field values against its shape's plan (fields in the plan's order)."""
    for rule, value in zip(shape.plan, fields.values(), strict=True):
        kind_of = type(value)
        if kind_of is float:
            if rule[1] <= value <= rule[2]:  # type: ignore[operator]
                continue
        elif kind_of is int:
            if rule[3] <= value <= rule[4]:  # type: ignore[operator]
                continue
        elif kind_of is bool:
            if rule[5]:
                continue
        elif kind_of is str and len(value) <= rule[6]:  # type: ignore[arg-type]
            continue
        check_value(shape.kind, rule, value)


def check_value(kind: str, rule: FieldRule, value: object) -> None:
    """Raise the WireError a field value deserves; returns when it is accepted after all."""
    name, expected, bounds = rule[0], rule[7], rule[8]
    _check_field_value(kind, name, value)
    # A declared field of another type would make InfluxDB refuse the whole batch.
    if expected is not None and _field_type(value) != expected:
        raise WireError("bad_value", f"{kind}.{name}: must be a {expected}")
    if bounds is not None and not bounds[0] <= value <= bounds[1]:  # type: ignore[operator]
        raise WireError("out_of_range", f"{kind}.{name}: outside [{bounds[0]:g}, "
                                        f"{bounds[1]:g}]")


def _field_type(value: object) -> FieldType:
    if isinstance(value, bool):
        return "bool"
    return "string" if isinstance(value, str) else "number"


def _check_field_value(kind: str, name: str, value: object) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise WireError("bad_value", f"{kind}.{name}: integer out of int64 range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise WireError("bad_value", f"{kind}.{name}: not finite")
        return
    if isinstance(value, str):
        if len(value) > MAX_STRING_FIELD_LEN:
            raise WireError("bad_value", f"{kind}.{name}: string too long")
        return
    raise WireError("bad_value", f"{kind}.{name}: type {type(value).__name__} not allowed")
