"""Write the Grafana dashboard JSON from code: ``python -m dashboards.build [--out DIR]``.

The JSON in dashboards/json/ is committed (Grafana's file provider reads it as it is) and a
test rebuilds it into a temporary directory to check it is up to date with this code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from dashboards.boards import agents, classroom, district, school, wireless
from dashboards.model import Dashboard

JSON_DIR = Path(__file__).resolve().parent / "json"

BOARDS: dict[str, Callable[[], Dashboard]] = {
    "district.json": district.dashboard,
    "school.json": school.dashboard,
    "classroom.json": classroom.dashboard,
    "wireless.json": wireless.dashboard,
    "agents.json": agents.dashboard,
}


def render(dashboard: Dashboard) -> str:
    """The file text of one dashboard (stable: same code, same bytes)."""
    return json.dumps(dashboard.to_json(), indent=2, ensure_ascii=False) + "\n"


def build(out: Path) -> list[Path]:
    """Write every dashboard into ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in BOARDS.items():
        path = out / name
        path.write_text(render(make()), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: build into dashboards/json (or --out)."""
    parser = argparse.ArgumentParser(prog="python -m dashboards.build", description=__doc__)
    parser.add_argument("--out", type=Path, default=JSON_DIR, help="directory to write into")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
