"""InfluxDB 2.x/3.x writer through influxdb-client (/api/v2/write); VictoriaMetrics too."""

from __future__ import annotations

from typing import Any

from collector.config import Influx2Storage
from collector.storage import StorageError, parse_retry_after


class Influx2Writer:
    """Writes to one org and bucket with a synchronous WriteApi (we batch and retry ourselves)."""

    def __init__(self, settings: Influx2Storage) -> None:
        self.settings = settings
        self._client: Any = None
        self._api: Any = None

    def _write_api(self) -> Any:
        # Created on first use so that building a writer never connects.
        if self._api is None:
            from influxdb_client import InfluxDBClient
            from influxdb_client.client.write_api import SYNCHRONOUS

            self._client = InfluxDBClient(
                url=self.settings.url, token=self.settings.secret("token") or "",
                org=self.settings.org, timeout=int(self.settings.timeout * 1000), retries=False,
            )
            self._api = self._client.write_api(write_options=SYNCHRONOUS)
        return self._api

    def write(self, lines: list[str]) -> None:
        """Write the points; raises StorageError."""
        if not lines:
            return
        import urllib3
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._write_api().write(
                bucket=self.settings.bucket, org=self.settings.org,
                record="\n".join(lines), write_precision=WritePrecision.MS,
            )
        except ApiException as exc:
            headers: dict[str, str] = dict(exc.headers or {})
            raise StorageError(
                f"{self.settings.url} /api/v2/write answered {exc.status}: "
                f"{str(exc.body)[:300]}",
                status=exc.status, retry_after=parse_retry_after(headers.get("Retry-After")),
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageError(f"{self.settings.url} unreachable: {exc}") from None

    def close(self) -> None:
        """Close the client."""
        if self._client is not None:
            self._client.close()
            self._client, self._api = None, None
