"""Optional InfluxDB sink: readings mirrored as line protocol after each commit.

PostgreSQL stays the system of record; the sink is a best-effort copy for
sites that already run InfluxDB 2.x/3.x (written with influxdb-client to
/api/v2/write). A failed write is logged and counted, never blocks ingest.
Line format: ``{metric},tenant={t},device={d} value={v},quality={q}i {time_us}``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from .pipeline import ReadingRow

log = logging.getLogger(__name__)

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_TAG_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})


def line_protocol(rows: Iterable[ReadingRow]) -> bytes:
    """Readings as InfluxDB line protocol with microsecond timestamps."""
    lines = []
    for time_us, device, metric, value, quality, tenant in rows:
        lines.append(
            f"{metric.translate(_MEASUREMENT_ESCAPES)},tenant={tenant.translate(_TAG_ESCAPES)},"
            f"device={device.translate(_TAG_ESCAPES)} value={float(value)!r},quality={int(quality)}i {time_us}"
        )
    return ("\n".join(lines) + "\n").encode() if lines else b""


class InfluxSink:
    """Writes through influxdb-client (InfluxDB 2.x/3.x API)."""

    def __init__(self, url: str, token: str, org: str, bucket: str, timeout_ms: int = 10_000) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.bucket = bucket
        self.org = org
        self.client: Any = InfluxDBClient(url=url, token=token, org=org, timeout=timeout_ms)
        self.write_api: Any = self.client.write_api(write_options=SYNCHRONOUS)
        self.failures = 0

    def write(self, rows: list[ReadingRow]) -> bool:
        from influxdb_client.domain.write_precision import WritePrecision

        data = line_protocol(rows)
        if not data:
            return True
        try:
            self.write_api.write(
                bucket=self.bucket, org=self.org, record=data, write_precision=WritePrecision.US
            )
        except Exception as exc:  # the client raises many kinds (HTTP, urllib3, timeouts)
            self.failures += 1
            log.warning("InfluxDB write of %d readings failed: %s", len(rows), str(exc)[:200])
            return False
        return True

    def close(self) -> None:
        self.write_api.close()
        self.client.close()
