"""InfluxDB 1.x writer: POST /write?db=&rp=&precision=ms (Debian's influxdb 1.6 and later)."""

from __future__ import annotations

import urllib3

from collector.config import Influx1Storage
from collector.storage import MAX_CONCURRENT_WRITES, parse_retry_after
from collector.storage.refusal import Target, error_for, unreachable


class Influx1Writer:
    """Writes to one database and retention policy."""

    def __init__(self, settings: Influx1Storage) -> None:
        self.settings = settings
        # One connection per concurrent writer (write.writers; more would be opened and
        # dropped with a warning each time).
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(total=settings.timeout), retries=False,
            maxsize=MAX_CONCURRENT_WRITES,
        )
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        password = settings.secret("password")
        if settings.username:
            self._headers.update(
                urllib3.make_headers(basic_auth=f"{settings.username}:{password or ''}"))
        self._url = settings.url.rstrip("/") + "/write"
        self._fields = {"db": settings.database, "rp": settings.retention_policy,
                        "precision": "ms"}
        self.target = Target(
            "InfluxDB", settings.url, settings.database, "storage.database",
            f'CREATE DATABASE "{settings.database}"',
            "storage.username / password_file (or password_env)", settings.username)

    def write(self, lines: list[str]) -> None:
        """POST the points; raises StorageError.

        A 204 is durable: InfluxDB 1.x appends the points to its WAL and, with the default
        ``wal-fsync-delay = "0s"``, fsyncs it before it answers.
        """
        if not lines:
            return
        from urllib.parse import urlencode

        try:
            resp = self._http.request(
                "POST", f"{self._url}?{urlencode(self._fields)}",
                body="\n".join(lines).encode("utf-8"), headers=self._headers,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise unreachable(self.target, exc) from None
        if resp.status == 204:
            return
        raise error_for(resp.status, resp.data[:2000].decode("utf-8", "replace"), self.target,
                        parse_retry_after(resp.headers.get("Retry-After")))

    def close(self) -> None:
        """Close pooled connections."""
        self._http.clear()
