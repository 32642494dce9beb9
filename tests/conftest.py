"""Shared fixtures: the real services (scripts/services.sh) and helpers to query them."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "scripts" / "services.sh"


@dataclass
class Services:
    """Running services of one directory, started by scripts/services.sh."""

    dir: Path
    env: dict[str, str]

    def start(self, *names: str) -> None:
        """Start (or restart) services in this directory; ports are kept."""
        result = subprocess.run(["bash", str(SERVICES), "start", str(self.dir), *names],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        self.env = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)

    def stop(self, *names: str) -> None:
        """Stop services of this directory."""
        subprocess.run(["bash", str(SERVICES), "stop", str(self.dir), *names], check=True)

    @property
    def mqtt_port(self) -> int:
        """Mosquitto's loopback port."""
        return int(self.env["MQTT_PORT"])

    @property
    def influx_url(self) -> str:
        """InfluxDB 1.x base URL."""
        return self.env["INFLUXDB_URL"]

    @property
    def victoria_url(self) -> str:
        """VictoriaMetrics base URL."""
        return self.env["VICTORIA_URL"]


def start_services(directory: Path, *names: str) -> Services:
    """Start services in a new directory."""
    services = Services(directory, {})
    services.start(*names)
    return services


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Mosquitto, InfluxDB 1.x and VictoriaMetrics for the whole test session."""
    svc = start_services(tmp_path_factory.mktemp("services"))
    yield svc
    svc.stop()


def influx_query(url: str, db: str, query: str) -> list[dict[str, object]]:
    """Run InfluxQL; the series of the first statement (epoch ms)."""
    qs = urllib.parse.urlencode({"db": db, "q": query, "epoch": "ms"})
    with urllib.request.urlopen(f"{url}/query?{qs}", timeout=10) as resp:
        result = orjson.loads(resp.read())["results"][0]
    assert "error" not in result, result
    series: list[dict[str, object]] = result.get("series", [])
    return series


def influx_rows(url: str, db: str, query: str) -> list[dict[str, object]]:
    """Rows of every series as dicts (tags merged in for GROUP BY *)."""
    rows = []
    for s in influx_query(url, db, query):
        tags = s.get("tags") or {}
        for values in s["values"]:  # type: ignore[attr-defined]
            rows.append({**tags, **dict(zip(s["columns"], values, strict=True))})  # type: ignore[arg-type]
    return rows


@pytest.fixture
def influx_db(services: Services) -> Iterator[str]:
    """A fresh InfluxDB database for one test."""
    name = "t_" + uuid.uuid4().hex[:12]
    influx_query(services.influx_url, "", f'CREATE DATABASE "{name}"')
    yield name
    influx_query(services.influx_url, "", f'DROP DATABASE "{name}"')


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix no other test uses, so tests on the shared broker never mix."""
    return f"t{uuid.uuid4().hex[:10]}/v1"


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.1) -> None:
    """Poll a condition of a real service (not a sleep standing in for a result)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def schoolmon_cmd(*args: str) -> list[str]:
    """The schoolmon command line, with this interpreter."""
    return [sys.executable, "-m", "schoolmon", *args]


def start_collector_process(config: Path, timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """`schoolmon collector run` as a real process, returned once its subscription is confirmed.

    Its log goes to a file beside the config (``<config>.<n>.log``): a batch published before
    the collector subscribed would only arrive with the agent's resend.
    """
    log = config.with_suffix(f".{time.monotonic_ns()}.log")
    with log.open("wb") as out:
        proc = subprocess.Popen(schoolmon_cmd("collector", "run", "-c", str(config)), stderr=out)
    wait_until(lambda: b"subscribed" in log.read_bytes() or proc.poll() is not None, timeout,
               "the collector to subscribe")
    assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
    return proc
