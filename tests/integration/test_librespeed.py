"""LibreSpeed's own browser client (upstream, unchanged, from ../shared/peers/librespeed) against
`schoolmon speedtest serve`, in headless Chromium across a shaped veth pair.

The page comes from another origin (a second port), loads our server list (LibreSpeed's
``loadServerList``: multi-server mode, ``cors=true``), runs the test and posts what the client
measured back to its own origin; telemetry goes to our server. Download, upload (which needs the
CORS preflight answered) and ping must all be measured, within a sane range of the link's rate.

Run as a module, this file is the page's web server (python -m tests.integration.test_librespeed
PORT DIR PEERS):
GET serves DIR's files (the page) and PEERS' (the upstream client), POST /result stores the body.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import ROOT, schoolmon_cmd, wait_until

pytestmark = pytest.mark.integration
PEERS = ROOT.parent / "shared" / "peers" / "librespeed"
RATE_MBIT = 20.0
ST_PORT, PAGE_PORT = 8080, 8081
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--enable-logging=stderr", "--v=0"]

PAGE = """<!doctype html><meta charset="utf-8"><title>librespeed upstream client</title>
<script src="speedtest.js"></script>
<script>
const report = (data) => fetch("/result", {method: "POST", body: JSON.stringify(data)});
const s = new Speedtest();
s.setParameter("time_dl_max", 8); s.setParameter("time_ul_max", 8);
s.setParameter("time_auto", false);
s.setParameter("telemetry_level", "basic");
s.setParameter("url_telemetry", "SERVER/results/telemetry.php");
let last = {};
s.onupdate = (d) => { last = d; };
s.onend = (aborted) => report({aborted, dl: last.dlStatus, ul: last.ulStatus,
                               ping: last.pingStatus, jitter: last.jitterStatus,
                               server: s.getSelectedServer().name});
s.loadServerList("SERVER/servers.json", (servers) => {
  if (!servers) { report({error: "server list not loaded"}); return; }
  s.selectServer((best) => best ? s.start() : report({error: "no server answered"}));
});
</script>"""


class _Page(BaseHTTPRequestHandler):
    roots: tuple[Path, ...] = ()

    def do_GET(self) -> None:
        name = self.path.split("?")[0].lstrip("/") or "index.html"
        for root in self.roots:
            if "/" not in name and (root / name).is_file():
                body = (root / name).read_bytes()
                self.send_response(200)
                kind = "text/html" if name.endswith(".html") else "application/javascript"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        self.send_error(404)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        (self.roots[0] / "result.json").write_bytes(body)
        self.send_response(204)
        self.end_headers()


def serve_page(port: int, directory: Path, peers: Path) -> None:
    """The page's origin: the test's page and the upstream client files, loaded from PEERS."""
    _Page.roots = (directory, peers)
    ThreadingHTTPServer(("0.0.0.0", port), _Page).serve_forever()


def chromium_argv(profile: Path, url: str) -> list[str]:
    """Headless Chromium opening ``url`` with a fresh profile."""
    exe = shutil.which("chromium")
    assert exe, "Debian package chromium is needed: apt-get install chromium"
    return [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url]


def reachable(link: object, url: str) -> bool:
    """True when ``url`` answers from the client namespace."""
    probe = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=2).read()"
    argv = link.command(link.client_ns, [sys.executable, "-c", probe])  # type: ignore[attr-defined]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def test_upstream_librespeed_client_measures_download_upload_and_ping(tmp_path: Path) -> None:
    """The unchanged upstream client, cross-origin, across a 20 Mbit/s link."""
    from bench.netlab import ShapedLink, available

    why = available()
    assert why is None, why
    assert (PEERS / "speedtest.js").is_file(), f"upstream client not found in {PEERS}"
    procs: list[subprocess.Popen[bytes]] = []
    with ShapedLink(RATE_MBIT) as link:
        server = f"http://{link.server_ip}:{ST_PORT}"
        page_dir = tmp_path / "page"
        page_dir.mkdir()
        (page_dir / "index.html").write_text(PAGE.replace("SERVER", server), encoding="utf-8")
        telemetry = tmp_path / "telemetry.jsonl"
        try:
            with open(tmp_path / "servers.log", "wb") as log:
                procs.append(subprocess.Popen(link.command(link.server_ns, schoolmon_cmd(
                    "speedtest", "serve", "--listen", f"{link.server_ip}:{ST_PORT}",
                    "--name", "district hub", "--telemetry", str(telemetry))),
                    stdout=log, stderr=log, cwd=ROOT))
                procs.append(subprocess.Popen(link.command(link.server_ns, [
                    sys.executable, "-m", "tests.integration.test_librespeed", str(PAGE_PORT),
                    str(page_dir), str(PEERS)]),
                    stdout=log, stderr=log, cwd=ROOT))
            wait_until(lambda: reachable(link, f"{server}/healthz")
                       and reachable(link, f"http://{link.server_ip}:{PAGE_PORT}/"), 30,
                       "speed-test server and page server")
            with open(tmp_path / "chromium.log", "wb") as log:
                procs.append(subprocess.Popen(link.command(link.client_ns, chromium_argv(
                    tmp_path / "profile", f"http://{link.server_ip}:{PAGE_PORT}/")),
                    stdout=log, stderr=log))
            result_file = page_dir / "result.json"
            wait_until(result_file.exists, 120, "the upstream client's result")
            wait_until(lambda: telemetry.exists() and telemetry.read_text().strip() != "", 20,
                       "telemetry stored")
            listed = json.loads(subprocess.run(link.command(link.client_ns, [
                sys.executable, "-c", f"import urllib.request; print(urllib.request.urlopen("
                f"'{server}/servers.json', timeout=5).read().decode())"]),
                capture_output=True, text=True, check=True).stdout)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(15)
    result = json.loads(result_file.read_text())
    print(f"upstream LibreSpeed client over {RATE_MBIT} Mbit/s: {result}")
    assert not result.get("error") and result["aborted"] is False, result
    assert result["server"] == "district hub"
    down, up, ping = float(result["dl"]), float(result["ul"]), float(result["ping"])
    assert 0.5 * RATE_MBIT <= down <= 1.15 * RATE_MBIT, result
    assert 0.5 * RATE_MBIT <= up <= 1.15 * RATE_MBIT, result  # 0 without the preflight answer
    assert 0 < ping < 200, result
    record = json.loads(telemetry.read_text().splitlines()[-1])
    assert (record["dl"], record["ul"], record["ping"]) == (result["dl"], result["ul"],
                                                             result["ping"])
    assert json.loads(record["extra"])["server"] == "district hub"
    # librespeed-cli's and the frontends' server-list format, naming the address we were asked on
    assert listed == [{"id": 1, "name": "district hub", "server": f"{server}/",
                       "dlURL": "backend/garbage.php", "ulURL": "backend/empty.php",
                       "pingURL": "backend/empty.php", "getIpURL": "backend/getIP.php",
                       "sponsorName": "", "sponsorURL": ""}]


def test_preflight_is_answered_like_librespeeds_backend() -> None:
    """OPTIONS with the headers a cross-origin upload asks for: allowed, with Max-Age."""
    import asyncio
    import socket

    from agent.speedtest.server import serve

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])

    async def main() -> dict[str, str]:
        ready, stop = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(serve("127.0.0.1", port, ready=ready, stop=stop))
        await ready.wait()
        try:
            return await asyncio.to_thread(_preflight, port)
        finally:
            stop.set()
            await task

    headers = asyncio.run(main())
    assert headers["access-control-allow-origin"] == "*"
    assert "POST" in headers["access-control-allow-methods"]
    assert {"content-encoding", "content-type"} <= {
        h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert int(headers["access-control-max-age"]) > 0


def _preflight(port: int) -> dict[str, str]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/backend/empty.php?cors=true", method="OPTIONS",
        headers={"Origin": "http://elsewhere:8081", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-encoding"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status in (200, 204)
        return {k.lower(): v for k, v in resp.headers.items()}


if __name__ == "__main__":
    serve_page(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
