"""What every ssh parser returns (:class:`IfStatus`) and the one error it raises (ParseError).

Parsers are pure functions ``parse(text) -> list[IfStatus]`` (or an uptime), one module per CLI
command, tested on recorded real output.  Anything they cannot read raises :class:`ParseError`
naming the command; the probe adds the device.  Nothing else may escape a parser.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from typing import Final

from agent.probes.base import ProbeError

INT64_MAX: Final = 2**63 - 1
# What a device may print for one command.  A 1,200-port switch's 'display interface' is about
# 2 MB; past these the output is not CLI output but an attack or a broken device, and every
# parser refuses it before any pattern runs (regex cost is then bounded per line).
MAX_OUTPUT_CHARS: Final = 8 * 2**20
MAX_LINE_CHARS: Final = 1024  # the longest real CLI line we have recorded is under 200


class ParseError(ProbeError):
    """Output of a command that does not read as that command's output."""

    def __init__(self, command: str, why: str) -> None:
        super().__init__(f"{command!r}: {why}")
        self.command = command
        self.why = why


@dataclass(frozen=True)
class IfStatus:
    """One interface as a device reports it; None where the command does not say."""

    name: str
    up: bool | None = None  # operational: link up and line protocol up (or spoofing)
    admin_down: bool | None = None
    speed_mbps: int | None = None
    in_bps: float | None = None  # the device's own average rate
    out_bps: float | None = None
    in_errors: int | None = None
    out_errors: int | None = None
    in_octets: int | None = None  # cumulative counters
    out_octets: int | None = None
    in_packets: int | None = None
    out_packets: int | None = None


def merge(*reports: Iterable[IfStatus], key: Callable[[str], str] = lambda n: n) -> list[IfStatus]:
    """Join the reports of several commands by interface (first report wins per field).

    ``key`` maps a name as printed to the canonical name used for the result.
    """
    merged: dict[str, IfStatus] = {}
    for report in reports:
        for item in report:
            name = key(item.name)
            old = merged.get(name)
            if old is None:
                merged[name] = replace(item, name=name)
                continue
            filled = {f.name: getattr(item, f.name) for f in fields(IfStatus)
                      if getattr(old, f.name) is None and getattr(item, f.name) is not None}
            if filled:
                merged[name] = replace(old, **filled)
    return list(merged.values())


def to_int(command: str, text: str) -> int:
    """A non-negative decimal counter; ParseError when absurd (would not fit an int64)."""
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > INT64_MAX:
        raise ParseError(command, f"not a counter: {text[:30]!r}")
    return int(text)


def opt_int(command: str, text: str) -> int | None:
    """A counter, or None where the device prints '-' (not supported)."""
    return None if text in ("-", "--") else to_int(command, text)


_SPEED_RE: Final = re.compile(r"^(\d{1,7})(?:\.(\d{1,3}))?\s*([KMGT])(?:b/s|bps|bit)?$", re.I)
_SPEED_UNIT: Final = {"K": 0.001, "M": 1.0, "G": 1000.0, "T": 1_000_000.0}


def speed_mbps(text: str) -> int | None:
    """'1000M', '10G', '1G(a)', '100Mb/s', '2.5G' -> Mbit/s; None when not a number."""
    m = _SPEED_RE.match(re.sub(r"\(a\)$", "", text.strip(), flags=re.I))
    if m is None:
        return None
    value = float(f"{m.group(1)}.{m.group(2) or 0}") * _SPEED_UNIT[m.group(3).upper()]
    return round(value) if value >= 1 else None


# What devices print instead of an answer.  Checked before parsing so the error says why.
_REJECTED: Final = re.compile(
    r"^\s*(?:%\s*\S|Error:\s*\S)"  # network CLIs: '% Invalid input ...', 'Error: Unrecognized ...'
    r"|^\S+: .*(?:command not found|No such file or directory|Permission denied)\s*$"  # a shell
)
# '---- More ----', ' --More-- ', '<--- More --->'.  Only lines holding 'more' are searched, and
# the lookbehind lets a run of dashes be tried from its first dash only: the old
# '-{2,}\s*More\s*-{2,}' retried every suffix of a run (quadratic: 80k dashes took 59 s).
_PAGER: Final = re.compile(r"(?<!-)-{2,}[ \t]{0,8}More[ \t]{0,8}--|<--- More --->", re.I)


def checked_lines(command: str, text: str, *, may_be_empty: bool = False) -> list[str]:
    """The output's lines; ParseError for empty output, an error message, a pager prompt, or
    output too large to be the command's (over MAX_OUTPUT_CHARS, or a line over MAX_LINE_CHARS).
    """
    if len(text) > MAX_OUTPUT_CHARS:
        raise ParseError(command, f"output of {len(text)} characters, over the cap of "
                                  f"{MAX_OUTPUT_CHARS}")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    longest = max(lines, key=len)
    if len(longest) > MAX_LINE_CHARS:
        raise ParseError(command, f"a line of {len(longest)} characters (cap {MAX_LINE_CHARS}): "
                                  f"{longest[:60]!r}...")
    meaningful = [line for line in lines if line.strip()]
    if not meaningful and not may_be_empty:
        raise ParseError(command, "empty output")
    for line in meaningful[:3]:
        if _REJECTED.search(line):
            raise ParseError(command, f"the device rejected the command: {line.strip()[:120]!r}")
    for line in meaningful:
        if "more" in line.lower() and _PAGER.search(line):
            raise ParseError(command, "output is paged ('More' prompt): paging is not disabled")
    return lines


def strict(command: str, line: str, pattern: re.Pattern[str]) -> re.Match[str]:
    """Match a line that announced itself as a known kind; ParseError when it is cut or odd."""
    m = pattern.match(line)
    if m is None:
        raise ParseError(command, f"unexpected or truncated line: {line.strip()[:120]!r}")
    return m
