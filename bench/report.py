"""Write a benchmark's results into its own section of docs/benchmarks.md."""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = ("# Benchmarks\n\nWritten by the scripts in `bench/`; each section is replaced by "
          "its script.\n")


def machine() -> str:
    """One line describing where the figures were measured."""
    import os

    return (f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def write_section(name: str, body: str) -> None:
    """Replace (or add) the section ``name`` of docs/benchmarks.md."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else HEADER
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text, encoding="utf-8")
