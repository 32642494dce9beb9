"""InfluxQL over HTTP ``/query``: InfluxDB 1.x, and InfluxDB 2.x/3.x through its v1-compatible API.

The report only reads, so it talks plain HTTP (urllib3, already a collector dependency): with an
``influxdb1`` storage the database and optional basic auth, with ``influxdb2`` the bucket as the
database (it needs a DBRP mapping, which InfluxDB 2 creates for buckets made by the v1 API or by
``influx v1 dbrp create``) and the token.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
import urllib3

from collector.config import Influx1Storage, Influx2Storage


class QueryError(Exception):
    """A query that InfluxDB refused or could not answer."""


@dataclass(frozen=True)
class Series:
    """One series of a result: its tags and rows (dicts by column, time in epoch ms)."""

    name: str
    tags: dict[str, str]
    rows: list[dict[str, Any]] = field(default_factory=list)


class InfluxReader:
    """Runs InfluxQL SELECTs against the configured storage."""

    def __init__(self, settings: Influx1Storage | Influx2Storage,
                 http: urllib3.PoolManager | None = None) -> None:
        self._http = http or urllib3.PoolManager(
            timeout=urllib3.Timeout(total=max(settings.timeout, 30.0)), retries=False)
        self._url = settings.url.rstrip("/") + "/query"
        self._headers: dict[str, str] = {}
        if isinstance(settings, Influx1Storage):
            self._params = {"db": settings.database, "rp": settings.retention_policy}
            if settings.username:
                self._headers.update(urllib3.make_headers(
                    basic_auth=f"{settings.username}:{settings.secret('password') or ''}"))
        else:
            self._params = {"db": settings.bucket}
            token = settings.secret("token")
            if token:
                self._headers["Authorization"] = f"Token {token}"

    def query(self, influxql: str) -> list[Series]:
        """Every series of one statement; raises QueryError."""
        body = urlencode({**self._params, "q": influxql, "epoch": "ms"}).encode()
        headers = {**self._headers, "Content-Type": "application/x-www-form-urlencoded"}
        try:
            resp = self._http.request("POST", self._url, body=body, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise QueryError(f"InfluxDB {self._url} unreachable: {exc}") from None
        if resp.status != 200:
            raise QueryError(f"InfluxDB /query answered {resp.status}: "
                             f"{resp.data[:300].decode('utf-8', 'replace')}")
        try:
            result = orjson.loads(resp.data)["results"][0]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            raise QueryError("InfluxDB /query answered something that is not a result") from None
        if "error" in result:
            raise QueryError(f"InfluxDB: {result['error']}")
        out = []
        for s in result.get("series", []):
            columns = s["columns"]
            rows = [dict(zip(columns, values, strict=True)) for values in s.get("values", [])]
            out.append(Series(s.get("name", ""), dict(s.get("tags") or {}), rows))
        return out


    def query_chunked(self, influxql: str, chunk_size: int = 10_000) -> Iterator[Series]:
        """Every series piece of one statement, streamed in chunks of ``chunk_size`` rows.

        For statements that return raw points (a report period's speed tests of every school):
        InfluxDB sends one JSON object per line, so memory holds one chunk, not the answer.
        A series longer than a chunk comes in several pieces with the same name and tags.
        """
        body = urlencode({**self._params, "q": influxql, "epoch": "ms", "chunked": "true",
                          "chunk_size": str(chunk_size)}).encode()
        headers = {**self._headers, "Content-Type": "application/x-www-form-urlencoded"}
        try:
            resp = self._http.request("POST", self._url, body=body, headers=headers,
                                      preload_content=False)
        except urllib3.exceptions.HTTPError as exc:
            raise QueryError(f"InfluxDB {self._url} unreachable: {exc}") from None
        try:
            if resp.status != 200:
                raise QueryError(f"InfluxDB /query answered {resp.status}: "
                                 f"{resp.read(300).decode('utf-8', 'replace')}")
            pending = b""
            for block in resp.stream(65536):
                pending += block
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield from _chunk_series(line)
            yield from _chunk_series(pending)
        except urllib3.exceptions.HTTPError as exc:
            raise QueryError(f"InfluxDB {self._url}: {exc}") from None
        finally:
            resp.release_conn()


def _chunk_series(line: bytes) -> Iterator[Series]:
    if not line.strip():
        return
    try:
        result = orjson.loads(line)["results"][0]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        raise QueryError("InfluxDB /query answered something that is not a result") from None
    if "error" in result:
        raise QueryError(f"InfluxDB: {result['error']}")
    for s in result.get("series", []):
        columns = s["columns"]
        rows = [dict(zip(columns, values, strict=True)) for values in s.get("values", [])]
        yield Series(s.get("name", ""), dict(s.get("tags") or {}), rows)


def quote_literal(value: str) -> str:
    """An InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
