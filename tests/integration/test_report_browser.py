"""report.html in a real headless Chromium (Debian ``chromium``): it renders, shows the numbers,
and logs nothing to the console (the page's CSP would log any attempt to fetch a resource)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from collector.reports.command import cmd_report
from schoolmon.cli import build_parser
from tests.conftest import Services
from tests.integration.test_report import POLICY, fill, write_configs

pytestmark = pytest.mark.integration

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
GREEN, RED = (0x2F, 0x85, 0x5A), (0xC5, 0x30, 0x30)  # share bars, tier bars (svg.py)


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Chromium once with a fresh profile directory."""
    exe = shutil.which("chromium")
    assert exe, "Debian package chromium is needed: apt-get install chromium"
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def console_lines(stderr: str) -> list[str]:
    """What the page wrote to the console (Chromium logs it as 'INFO:CONSOLE...')."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def read_png(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and RGB pixels of an 8-bit RGB/RGBA non-interlaced PNG (what Chromium
    writes), decoded with zlib: no imaging library needed."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride = zlib.decompress(idat), width * channels
    prev, pixels = bytearray(stride), []
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) *
                                                          (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        pixels.extend(tuple(line[i:i + 3]) for i in range(0, stride, channels))
        prev = line
    return width, height, pixels  # type: ignore[return-value]


def near(pixel: tuple[int, int, int], color: tuple[int, int, int], tol: int = 40) -> bool:
    """Same colour within a tolerance (bars are drawn with some opacity)."""
    return all(abs(p - c) <= tol for p, c in zip(pixel, color, strict=True))


@pytest.fixture
def reports(services: Services, influx_db: str, tmp_path: Path) -> dict[str, Path]:
    """report.html in English and Chinese from the hand-built period in InfluxDB."""
    fill(services.influx_url, influx_db)
    config = write_configs(tmp_path, {"kind": "influxdb1", "url": services.influx_url,
                                      "database": influx_db})
    out = {}
    for lang in ("en", "zh-CN"):
        args = build_parser().parse_args([
            "report", "-c", str(config), "--policy", POLICY, "--from", "2026-11-16",
            "--to", "2026-11-18", "--out", str(tmp_path / lang), "--lang", lang])
        assert cmd_report(args) == 0
        out[lang] = tmp_path / lang / "report.html"
    return out


def test_report_renders_with_its_numbers_and_no_console_errors(
        reports: dict[str, Path], tmp_path: Path) -> None:
    """Screenshot not blank (charts drawn in their colours), DOM with the figures, no console."""
    for lang, page in reports.items():
        shot = tmp_path / f"{lang}.png"
        # Half scale: a 1100x1900 layout in 550x950 pixels keeps the pure-Python decode quick.
        run = chromium(tmp_path, "--window-size=1100,1900", "--force-device-scale-factor=0.5",
                       f"--screenshot={shot}", page.as_uri())
        assert run.returncode == 0, run.stderr[-2000:]
        assert console_lines(run.stderr) == [], lang
        width, height, pixels = read_png(shot)
        assert (width, height) == (550, 950)
        non_white = sum(1 for p in pixels if sum(p) < 720)
        assert non_white > 0.03 * len(pixels), f"{lang}: screenshot nearly blank"
        assert sum(near(p, GREEN) for p in pixels) > 500  # share bars meeting their target
        assert sum(near(p, RED) for p in pixels) > 100  # the shares below their target
        dom = chromium(tmp_path, "--dump-dom", page.as_uri())
        assert dom.returncode == 0 and console_lines(dom.stderr) == []
        assert 'data-share="75.0"' in dom.stdout and "75.0 %" in dom.stdout
        assert "66.7 %" in dom.stdout and "3 / 4" in dom.stdout
        assert "从化第二中学" in dom.stdout
        assert ("Schools that miss a target" if lang == "en" else "未达标的学校") in dom.stdout


def test_console_check_catches_a_page_that_fetches(tmp_path: Path) -> None:
    """The console check works: a page loading an external image under the same CSP logs."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" "
                    "content=\"default-src 'none'\"></head><body>"
                    "<img src=\"http://192.0.2.1/x.png\"></body></html>", encoding="utf-8")
    run = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert any("Content Security Policy" in line for line in console_lines(run.stderr))
