"""The wire contract's limits and its one error type (common/wire.py uses them; so do the
sample rules, common/sample_rules.py, and the settings that must match them)."""

from __future__ import annotations

import re
from typing import Final

# Limits, enforced on decode (and on encode, so an agent never builds what a collector rejects).
MAX_PAYLOAD_BYTES: Final = 256 * 1024
MAX_SAMPLES_PER_BATCH: Final = 1000
MAX_TAGS_PER_SAMPLE: Final = 16
MAX_FIELDS_PER_SAMPLE: Final = 32
MAX_NAME_LEN: Final = 64  # tag and field names
MAX_TAG_VALUE_LEN: Final = 128
MAX_STRING_FIELD_LEN: Final = 256
MAX_ID_LEN: Final = 64  # district, school, agent ids

# Use with fullmatch: Python's "$" also matches before a trailing newline.  (The patterns keep
# "^...$" because pydantic's regex engine, where "$" is the very end, reads them too.)
ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# These tags are added by the collector from the envelope; a sample may not set them.
RESERVED_TAGS: Final = frozenset({"district", "school", "agent"})
# Backslashes and control characters cannot be written safely as InfluxDB tag values; C1
# controls (U+0085 is a line break to many readers) and U+2028/U+2029 never belong in a name.
# As a regex character-class body: probes clean device names with it, settings are checked
# against TAG_PATTERN, and the collector refuses a batch whose tags hold any of it.
TAG_FORBIDDEN: Final = r"\\\x00-\x1f\x7f-\x9f\u2028\u2029"
TAG_PATTERN: Final = rf"^[^{TAG_FORBIDDEN}]{{1,{MAX_TAG_VALUE_LEN}}}$"
BAD_TAG_CHARS: Final = re.compile(f"[{TAG_FORBIDDEN}]")

FieldValue = int | float | bool | str


class WireError(ValueError):
    """A message that does not follow the contract; ``cause`` is a short stable word."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail


# Timestamps InfluxDB accepts in ms precision and that are plausible for a monitoring sample.
MIN_TS_MS: Final = 946_684_800_000  # 2000-01-01
MAX_TS_MS: Final = 4_102_444_800_000  # 2100-01-01
