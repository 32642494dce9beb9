"""Coverage-guided fuzzing (atheris / libFuzzer) of the wire decoder and the config loader.

Not run in CI (tests/unit/test_fuzz_bounded*.py are the bounded hypothesis runs that are); run it
by hand for as long as you like:

    .venv/bin/pip install atheris
    .venv/bin/python -m bench.fuzz_atheris --seconds 300          # each target 300 s

Targets:
- ``wire``: ``common.wire.decode_envelope`` on the input bytes; only ``WireError`` may escape,
  and an accepted envelope must re-encode to itself.
- ``config``: the input bytes as a YAML file through ``common.config.load_model`` for
  ``AgentConfig``, ``CollectorConfig`` or ``Inventory`` (chosen by the first byte); only
  ``ConfigError`` may escape.

Each target runs in a child process seeded with the example configs and a valid envelope; after a
crash the child is started again until the time is up, and every distinct crash (exception type
and the line that raised it) is printed with the input that caused it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("wire", "config")


def _atheris() -> Any:
    """The atheris module (installed by hand, not a dependency)."""
    import atheris  # type: ignore[import-untyped]

    return atheris


def _wire_target() -> None:
    atheris = _atheris()

    with atheris.instrument_imports():
        from common.wire import WireError, decode_envelope, encode_envelope

    def one(data: bytes) -> None:
        try:
            env = decode_envelope(data)
        except WireError:
            return
        if decode_envelope(encode_envelope(env)) != env:
            raise AssertionError("accepted envelope does not re-encode to itself")

    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


def _config_target() -> None:
    atheris = _atheris()

    with atheris.instrument_imports():
        import yaml  # noqa: F401  (instrumented: the parser is where the surprises were)

        from agent.config import AgentConfig
        from collector.config import CollectorConfig
        from collector.inventory import Inventory
        from common.config import ConfigError, load_model

    models = (AgentConfig, CollectorConfig, Inventory)
    environ = {name: "fuzz-secret-value" for name in re.findall(
        r"_env: *([A-Z_][A-Z0-9_]*)",
        "".join(p.read_text(encoding="utf-8") for p in (ROOT / "configs").glob("*.yaml")))}
    path = Path(tempfile.mkdtemp(prefix="atheris-config-")) / "fuzz.yaml"

    def one(data: bytes) -> None:
        if not data:
            return
        path.write_bytes(data[1:])
        try:
            load_model(models[data[0] % len(models)], path, environ=environ)
        except ConfigError:
            return

    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


def seed_corpus(target: str, directory: Path) -> None:
    """Valid inputs to start from: a real envelope, or each example config."""
    directory.mkdir(parents=True, exist_ok=True)
    if target == "wire":
        from common.wire import Envelope, Sample, encode_envelope

        env = Envelope("gz-th", "gz-th-001", "gz-th-001-gw", 7, 1_763_890_000_000, [
            Sample("iface", 1_763_890_000_000, {"iface": "eth0", "role": "wan"},
                   {"rx_bps": 81234567.5, "up": True, "link_mbps": 1000}),
            Sample("host", 1_763_890_000_000, {}, {"uptime_s": 3600, "cpu_pct": 1.5})])
        (directory / "envelope").write_bytes(encode_envelope(env))
        return
    order = {"agent": 0, "collector": 1, "inventory": 2}
    for example in (ROOT / "configs").glob("*.example.yaml"):
        kind = order[example.name.split(".")[0]]
        (directory / example.name).write_bytes(bytes([kind]) + example.read_bytes())


def run_target(target: str, seconds: float, work: Path) -> list[str]:
    """Fuzz one target for ``seconds``; the distinct crashes, each described in one block."""
    corpus, artifacts = work / f"{target}-corpus", work / f"{target}-crashes"
    seed_corpus(target, corpus)
    artifacts.mkdir(parents=True, exist_ok=True)
    crashes: dict[str, str] = {}
    deadline = time.monotonic() + seconds
    while (left := int(deadline - time.monotonic())) > 0 and len(crashes) < 20:
        before = set(artifacts.iterdir())
        out = subprocess.run(
            [sys.executable, "-m", "bench.fuzz_atheris", "--child", target, str(corpus),
             f"-max_total_time={left}", f"-artifact_prefix={artifacts}/", "-rss_limit_mb=4096"],
            cwd=ROOT, capture_output=True, text=True, check=False)
        new = sorted(set(artifacts.iterdir()) - before)
        if out.returncode == 0 or not new:
            break
        # atheris prints the traceback; name a crash by its exception and the deepest frame in
        # this project (not the harness), so one bug found many times is reported once.
        lines = (out.stdout + out.stderr).splitlines()
        frames = [ln.strip() for ln in lines if ln.strip().startswith("File ")]
        ours = [f for f in frames if str(ROOT) in f and "fuzz_atheris" not in f] or frames
        what = next((ln for ln in reversed(lines)
                     if re.match(r"^\w+(\.\w+)*(Error|Exception)\b", ln)), "unknown crash")
        key = f"{what.split(':')[0]} at {ours[-1] if ours else '?'}"
        if key not in crashes:
            crashes[key] = (f"{key}\n  {what}\n  input ({new[0].stat().st_size} bytes): "
                            f"{new[0].read_bytes()[:300]!r}\n  saved as {new[0]}")
    return list(crashes.values())


def main() -> int:
    """Fuzz every target for the given time; print what crashed."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        target = sys.argv.pop(2)
        del sys.argv[1]
        {"wire": _wire_target, "config": _config_target}[target]()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per target")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--work", type=Path, default=None,
                        help="corpus and crash directory (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="schoolmon-atheris-"))
    found = 0
    for target in args.targets:
        crashes = run_target(target, args.seconds, work)
        print(f"{target}: {len(crashes)} distinct crash(es) in {args.seconds:.0f} s", flush=True)
        for crash in crashes:
            print("  " + crash.replace("\n", "\n  "), flush=True)
        found += len(crashes)
    print(f"corpus and crashes kept in {work}")
    return 1 if found else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
