"""InfluxDB 2.x/3.x writer through influxdb-client (/api/v2/write); VictoriaMetrics too.

Durability of a 204: InfluxDB 2 fsyncs its WAL before answering (``storage-wal-fsync-delay``
0 by default). VictoriaMetrics keeps new rows in memory (raw rows ~1 s, then in-memory parts
flushed to disk every 5 s in 1.79; ``-inmemoryDataFlushInterval`` in later versions):
measured here, a SIGKILL 6 s after the 204 lost every point, and ``/internal/force_flush``
only makes them searchable (860 of 1,000 lost). Creating a snapshot flushes everything to
disk first, so with ``server: victoriametrics`` each write is followed by
``/snapshot/create`` + ``/snapshot/delete`` (~27 ms per batch measured) before it counts as
stored: 0 of 1,000 lost.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import urllib3

from collector.config import Influx2Storage
from collector.storage import MAX_CONCURRENT_WRITES, StorageError, parse_retry_after
from collector.storage.refusal import Target, error_for, unreachable

log = logging.getLogger(__name__)


class Influx2Writer:
    """Writes to one org and bucket with a synchronous WriteApi (we batch and retry ourselves)."""

    def __init__(self, settings: Influx2Storage) -> None:
        self.settings = settings
        self._client: Any = None
        self._api: Any = None
        self._http: urllib3.PoolManager | None = None
        self._undeleted: list[str] = []  # snapshots whose delete failed: retried next time
        # Writes come from several threads: the clients are made once, and a snapshot (which
        # covers every write before it) is taken by one thread at a time.
        self._lock = threading.Lock()
        vm = settings.server == "victoriametrics"
        self.target = Target(
            "VictoriaMetrics" if vm else "InfluxDB", settings.url, settings.bucket,
            "storage.bucket", f"influx bucket create -n {settings.bucket} -o {settings.org}",
            "storage.token_env / token_file")

    def _write_api(self) -> Any:
        # Created on first use so that building a writer never connects.
        with self._lock:
            return self._make_write_api()

    def _make_write_api(self) -> Any:
        if self._api is None:
            from influxdb_client import InfluxDBClient
            from influxdb_client.client.write_api import SYNCHRONOUS

            self._client = InfluxDBClient(
                url=self.settings.url, token=self.settings.secret("token") or "",
                org=self.settings.org, timeout=int(self.settings.timeout * 1000), retries=False,
                connection_pool_maxsize=MAX_CONCURRENT_WRITES,
            )
            self._api = self._client.write_api(write_options=SYNCHRONOUS)
        return self._api

    def write(self, lines: list[str]) -> None:
        """Write the points (durably); raises StorageError."""
        if not lines:
            return
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._write_api().write(
                bucket=self.settings.bucket, org=self.settings.org,
                record="\n".join(lines), write_precision=WritePrecision.MS,
            )
        except ApiException as exc:
            headers: dict[str, str] = dict(exc.headers or {})
            body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) \
                else str(exc.body or "")
            raise error_for(exc.status or 0, body, self.target,
                            parse_retry_after(headers.get("Retry-After"))) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise unreachable(self.target, exc) from None
        if self.settings.server == "victoriametrics":
            with self._lock:
                self._persist()

    def _get(self, path: str) -> bytes:  # called with self._lock held
        if self._http is None:
            self._http = urllib3.PoolManager(
                timeout=urllib3.Timeout(total=self.settings.timeout), retries=False)
        url = self.settings.url.rstrip("/") + path
        try:
            resp = self._http.request("GET", url)
        except urllib3.exceptions.HTTPError as exc:
            raise unreachable(self.target, exc) from None
        if resp.status != 200:
            raise error_for(resp.status, resp.data[:2000].decode("utf-8", "replace"),
                            self.target)
        return bytes(resp.data)

    def _persist(self) -> None:
        """Flush VictoriaMetrics' in-memory data to disk: a snapshot does, then delete it."""
        try:
            answer = json.loads(self._get("/snapshot/create"))
        except ValueError:
            answer = {}
        name = answer.get("snapshot") if isinstance(answer, dict) else None
        if not isinstance(name, str) or answer.get("status") != "ok":
            raise StorageError(f"VictoriaMetrics at {self.settings.url} could not create a "
                               f"snapshot ({answer}): the points may not be on disk yet; "
                               "see its log (disk full?)", cause="not_durable", action="retry")
        # A snapshot pins its parts on disk: never leave one behind.
        self._undeleted.append(name)
        for pending in list(self._undeleted):
            try:
                self._get(f"/snapshot/delete?snapshot={pending}")
                self._undeleted.remove(pending)
            except StorageError as exc:
                log.warning("could not delete VictoriaMetrics snapshot %s (%s); will retry",
                            pending, exc)

    def close(self) -> None:
        """Close the client."""
        if self._client is not None:
            self._client.close()
            self._client, self._api = None, None
        if self._http is not None:
            self._http.clear()
