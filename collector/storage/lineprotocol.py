"""InfluxDB line protocol for validated samples (ms precision)."""

from __future__ import annotations

from common.wire import AgentIdentity, FieldValue, Sample

_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key."""
    return text.translate(_KEY_ESCAPES)


def format_field(value: FieldValue) -> str:
    """One field value.

    Every number is written as a float: an agent that sends ``0`` one day and ``0.5`` the next
    (or two agent versions that differ) would otherwise hit InfluxDB's field-type conflict and
    lose points.
    """
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


def sample_line(sample: Sample, who: AgentIdentity) -> str:
    """A sample as a point, with the agent's identity tags added."""
    tags = dict(sample.tags)
    tags["district"], tags["school"], tags["agent"] = who.district, who.school, who.agent
    return format_line(sample.kind, tags, sample.fields, sample.ts_ms)
