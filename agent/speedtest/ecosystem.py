"""What LibreSpeed's frontends, CLI and telemetry expect of a backend, besides the transfers.

- CORS: a page on another origin (LibreSpeed's multi-server mode, ``cors=true``) sends its
  upload with a ``Content-Encoding`` header, so the browser first asks with a preflight OPTIONS;
  the backend answers it, and every answer, with the Access-Control headers LibreSpeed's PHP
  backend sends.
- The server list: a JSON array in the format LibreSpeed's frontends (``loadServerList``) and
  librespeed-cli (``--server-json``) read: id, name, server, dlURL, ulURL, pingURL, getIpURL.
- Telemetry: LibreSpeed's client POSTs its result (multipart or urlencoded: dl, ul, ping,
  jitter, ispinfo, extra) to ``results/telemetry.php`` and reads back ``id <n>``.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Final
from urllib.parse import parse_qs

import orjson

CORS_HEADERS: Final = (b"Access-Control-Allow-Origin: *\r\n"
                       b"Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
                       b"Access-Control-Allow-Headers: Content-Encoding, Content-Type\r\n")
PREFLIGHT_MAX_AGE_S: Final = 86400  # one preflight per page, not one per upload request
MAX_FORM_BYTES: Final = 64 * 1024  # a telemetry POST (LibreSpeed's log is off by default)
TELEMETRY_FIELDS: Final = ("dl", "ul", "ping", "jitter", "ispinfo", "extra")
# A Host header echoed into the server list: a name, IPv4 or [IPv6], and a port.
_HOST_RE: Final = re.compile(r"^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$")


def server_base(host_header: str | None, sockname: tuple[str, int] | None) -> str:
    """http://HOST:PORT/ as the client reached us (its Host header if sane, else our address)."""
    if host_header and _HOST_RE.match(host_header):
        return f"http://{host_header}/"
    host, port = (sockname[0], sockname[1]) if sockname else ("127.0.0.1", 80)
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def server_list(base: str, name: str) -> bytes:
    """The server list JSON (LibreSpeed frontends and librespeed-cli) naming this one server."""
    return orjson.dumps([{
        "id": 1, "name": name, "server": base,
        "dlURL": "backend/garbage.php", "ulURL": "backend/empty.php",
        "pingURL": "backend/empty.php", "getIpURL": "backend/getIP.php",
        "sponsorName": "", "sponsorURL": "",
    }])


def parse_form(body: bytes, content_type: str) -> dict[str, str]:
    """Fields of a multipart/form-data or urlencoded body (first value of each name)."""
    if content_type.lower().startswith("multipart/form-data"):
        head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        out: dict[str, str] = {}
        for part in msg.iter_parts() if msg.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes) and name not in out:
                out[name] = payload.decode("utf-8", "replace")
        return out
    pairs = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in pairs.items()}


def telemetry_record(form: dict[str, str], client: str, test_id: int) -> dict[str, object]:
    """One stored telemetry result: LibreSpeed's fields (as sent), the client and the time."""
    record: dict[str, object] = {"id": test_id, "time_ms": int(time.time() * 1000),
                                 "client": client}
    for key in TELEMETRY_FIELDS:
        record[key] = form.get(key, "")[:4096]
    return record


class PerMinute:
    """At most ``limit`` events in any 60 s: a LAN device cannot fill a disk with results."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._times: deque[float] = deque()

    def allow(self) -> bool:
        """Count one event if there is room; False when over the limit."""
        now = self.clock()
        while self._times and now - self._times[0] >= 60.0:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True
