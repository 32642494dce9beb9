"""InfluxDB line protocol for validated samples (ms precision)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Final

from common.wire import (
    RESERVED_TAGS,
    AgentIdentity,
    FieldPlan,
    FieldRule,
    FieldsHook,
    FieldValue,
    Sample,
    Shape,
    TagItems,
    check_value,
)

_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})


@lru_cache(maxsize=65536)
def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key.

    Cached: names and most tag values (interfaces, schools, devices) repeat in every batch,
    and this is the collector's hottest function.
    """
    return text.translate(_KEY_ESCAPES)


def format_field(value: FieldValue) -> str:
    """One field value.

    Every number is written as a float: an agent that sends ``0`` one day and ``0.5`` the next
    (or two agent versions that differ) would otherwise hit InfluxDB's field-type conflict and
    lose points.
    """
    kind = type(value)
    if kind is float:  # the common case first (JSON numbers with a point)
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value))
    # Line protocol has no escape for a newline inside a string field: it ends the point.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{escaped}"'


def format_line(measurement: str, tags: dict[str, str], fields: dict[str, FieldValue],
                ts_ms: int) -> str:
    """One point; tags sorted (InfluxDB's preferred order)."""
    head = measurement.translate(_MEASUREMENT_ESCAPES)
    tag_part = "".join(
        f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags.items()) if v
    )
    field_part = ",".join(f"{escape_key(k)}={format_field(v)}" for k, v in fields.items())
    return f"{head}{tag_part} {field_part} {ts_ms}"


def identity_tags(who: AgentIdentity) -> str:
    """The agent's identity as a tag-set fragment (remembered per agent: it repeats)."""
    ident = _IDENTS.get(who)
    if ident is None:
        ident = (f",agent={escape_key(who.agent)},district={escape_key(who.district)}"
                 f",school={escape_key(who.school)}")
        if len(_IDENTS) < _MEMO_MAX:
            _IDENTS[who] = ident
    return ident


def _head(kind: str, tags: TagItems) -> str:
    """Measurement and sample tags, formatted once per kind and tag set (they repeat)."""
    head = _HEADS.get((kind, tags))
    if head is None:
        tag_part = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in tags
                           if v and k not in RESERVED_TAGS)  # the envelope's identity wins
        head = kind.translate(_MEASUREMENT_ESCAPES) + tag_part
        if len(_HEADS) < _MEMO_MAX:
            _HEADS[(kind, tags)] = head
    return head


def sample_line(sample: Sample, who: AgentIdentity, identity: str | None = None) -> str:
    """A sample as a point, with the agent's identity tags added.

    Tags are not sorted across sample and identity tags: InfluxDB sorts them itself, and
    merging per sample would cost more than the write.
    """
    field_part = ",".join([f"{escape_key(k)}={format_field(v)}"
                           for k, v in sample.fields.items()])
    ident = identity if identity is not None else identity_tags(who)
    return f"{_head(sample.kind, tuple(sample.tags.items()))}{ident} {field_part} {sample.ts_ms}"


def line_maker(who: AgentIdentity) -> FieldsHook[str]:
    """The common.wire.decode_batch hook that checks a sample's fields and makes its line.

    One pass per field both checks it (its rule's accepted values, else common.wire.check_value
    raises the reject) and formats it: the collector's hottest loop (issue 11).
    """
    maker = _MAKERS.get(who)
    if maker is None:
        maker = _Lines(identity_tags(who)).checked_line
        if len(_MAKERS) < _MEMO_MAX:
            _MAKERS[who] = maker
    return maker


# A field's rule (common/wire.py) with its line-protocol text: (key=, floats accepted, ints
# accepted and within 2**53, where repr(float(n)) is f"{n}.0", bool texts or None, longest str
# accepted, rule).  Remembered per plan (wire's plans are remembered, and kept alive here).
_LineRule = tuple[str, float, float, int, int, tuple[str, str] | None, int, FieldRule]
_EXACT_INT: Final = 2**53
_MEMO_MAX: Final = 65_536
_IDENTS: dict[AgentIdentity, str] = {}
_MAKERS: dict[AgentIdentity, FieldsHook[str]] = {}
_HEADS: dict[tuple[str, TagItems], str] = {}
_LINE_PLANS: dict[int, tuple[FieldPlan, tuple[_LineRule, ...]]] = {}
# Per sample shape (common/wire.py: one object per shape, hashed by identity): head and rules.
_Compiled = tuple[str, tuple[_LineRule, ...]]
_COMPILED: dict[Shape, _Compiled] = {}


def _compile(shape: Shape) -> _Compiled:
    compiled = (_head(shape.kind, shape.tags), _line_plan(shape.plan))
    if len(_COMPILED) < _MEMO_MAX:
        _COMPILED[shape] = compiled
    return compiled


def _line_plan(plan: FieldPlan) -> tuple[_LineRule, ...]:
    known = _LINE_PLANS.get(id(plan))
    if known is not None and known[0] is plan:
        return known[1]
    rules = []
    for rule in plan:
        name, flo, fhi, ilo, ihi, bools, smax = rule[:7]
        key = escape_key(name) + "="
        rules.append((key, flo, fhi, max(ilo, -_EXACT_INT), min(ihi, _EXACT_INT),
                      (key + format_field(True), key + format_field(False)) if bools else None,
                      smax, rule))
    line_plan = tuple(rules)
    if len(_LINE_PLANS) < _MEMO_MAX:
        _LINE_PLANS[id(plan)] = (plan, line_plan)
    return line_plan


class _Lines:
    """The lines of one agent's samples."""

    __slots__ = ("ident",)

    def __init__(self, ident: str) -> None:
        self.ident = ident

    def checked_line(self, shape: Shape, ts_ms: int, fields: Mapping[str, FieldValue]) -> str:
        """The sample's line; raises WireError for a field value the contract refuses."""
        compiled = _COMPILED.get(shape)
        head, rules = compiled if compiled is not None else _compile(shape)
        parts: list[str] = []
        add = parts.append
        for (key, flo, fhi, ilo, ihi, bools, smax, rule), value in zip(
                rules, fields.values(), strict=True):
            kind_of = type(value)
            if kind_of is float:
                if flo <= value <= fhi:  # type: ignore[operator]
                    add(key + repr(value))
                    continue
            elif kind_of is int:
                if ilo <= value <= ihi:  # type: ignore[operator]
                    add(f"{key}{value}.0")
                    continue
            elif kind_of is bool:
                if bools is not None:
                    add(bools[0] if value else bools[1])
                    continue
            elif kind_of is str and len(value) <= smax:  # type: ignore[arg-type]
                add(key + format_field(value))
                continue
            check_value(shape.kind, rule, value)  # raises, unless an int, float or str subclass
            add(key + format_field(value))
        return f"{head}{self.ident} {','.join(parts)} {ts_ms}"
