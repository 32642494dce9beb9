"""InfluxDB line protocol for validated samples (ms precision)."""

from __future__ import annotations

from functools import lru_cache

from common.wire import RESERVED_TAGS, AgentIdentity, FieldValue, Sample

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
    """The agent's identity as a tag-set fragment, formatted once per envelope."""
    return (f",agent={escape_key(who.agent)},district={escape_key(who.district)}"
            f",school={escape_key(who.school)}")


@lru_cache(maxsize=65536)
def _head(kind: str, tags: tuple[tuple[str, str], ...]) -> str:
    """Measurement and sample tags, formatted once per kind and tag set (they repeat)."""
    tag_part = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in tags
                       if v and k not in RESERVED_TAGS)  # the envelope's identity always wins
    return kind.translate(_MEASUREMENT_ESCAPES) + tag_part


def sample_line(sample: Sample, who: AgentIdentity, identity: str | None = None) -> str:
    """A sample as a point, with the agent's identity tags added.

    Tags are not sorted across sample and identity tags: InfluxDB sorts them itself, and
    merging per sample would cost more than the write.
    """
    field_part = ",".join([f"{escape_key(k)}={format_field(v)}"
                           for k, v in sample.fields.items()])
    ident = identity if identity is not None else identity_tags(who)
    return f"{_head(sample.kind, tuple(sample.tags.items()))}{ident} {field_part} {sample.ts_ms}"
