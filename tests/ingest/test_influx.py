"""The InfluxDB sink: its line protocol against a real InfluxDB 1.x server, its client against a capture."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from ingest.influx import InfluxSink, line_protocol
from ingest.pipeline import ReadingRow
from territoire.services import free_port, wait_for_port

ROWS: list[ReadingRow] = [
    (1_735_689_600_000_001, "armoire-1", "power_w", 1830.5, 0, "is-sur-tille"),
    (1_735_689_660_000_000, "a84041000181c7b2", "distance_mm", 812.0, 2, "is-sur-tille"),
    (1_735_689_600_000_001, "odd id,with space", "power_w", -1.25, 0, "is-sur-tille"),
]


def test_line_protocol_escapes_and_keeps_microseconds() -> None:
    assert line_protocol(ROWS).decode().splitlines() == [
        "power_w,tenant=is-sur-tille,device=armoire-1 value=1830.5,quality=0i 1735689600000001",
        "distance_mm,tenant=is-sur-tille,device=a84041000181c7b2 value=812.0,quality=2i 1735689660000000",
        r"power_w,tenant=is-sur-tille,device=odd\ id\,with\ space value=-1.25,quality=0i 1735689600000001",
    ]
    assert line_protocol([]) == b""


@pytest.fixture
def influxd() -> Iterator[str]:
    binary = shutil.which("influxd")
    if binary is None:
        pytest.skip("influxd (Debian package influxdb) is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="territoire-influx-"))
    port, rpc = free_port(), free_port()
    (workdir / "influxdb.conf").write_text(
        f'reporting-enabled = false\nbind-address = "127.0.0.1:{rpc}"\n'
        f'[meta]\n  dir = "{workdir}/meta"\n'
        f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n  query-log-enabled = false\n'
        f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
        "[monitor]\n  store-enabled = false\n"
    )
    process = subprocess.Popen(
        [binary, "-config", str(workdir / "influxdb.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 30, process)  # type: ignore[arg-type]
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def influx_query(base: str, q: str) -> dict[str, object]:
    body = urllib.parse.urlencode({"q": q, "db": "territoire", "epoch": "u"}).encode()
    with urllib.request.urlopen(base + "/query", body, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_line_protocol_lands_in_influxdb_1x(influxd: str) -> None:
    influx_query(influxd, "CREATE DATABASE territoire")
    request = urllib.request.Request(
        influxd + "/write?db=territoire&precision=u", line_protocol(ROWS), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204
    result = influx_query(influxd, "SELECT device, tenant, value, quality FROM power_w ORDER BY time")
    series = result["results"][0]["series"][0]  # type: ignore[index]
    assert series["columns"] == ["time", "device", "tenant", "value", "quality"]
    assert sorted(series["values"]) == [
        [1_735_689_600_000_001, "armoire-1", "is-sur-tille", 1830.5, 0],
        [1_735_689_600_000_001, "odd id,with space", "is-sur-tille", -1.25, 0],
    ]


def test_sink_posts_to_the_v2_write_api() -> None:
    captured: list[tuple[str, dict[str, str], bytes]] = []

    class Capture(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            captured.append((self.path, dict(self.headers), self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sink = InfluxSink(f"http://127.0.0.1:{server.server_address[1]}", "s3cret", "commune", "mesures")
    try:
        assert sink.write(ROWS[:2]) is True
        assert sink.write([]) is True
    finally:
        sink.close()
        server.shutdown()
        server.server_close()
    assert len(captured) == 1
    path, headers, body = captured[0]
    parsed = urllib.parse.urlparse(path)
    assert parsed.path == "/api/v2/write"
    assert urllib.parse.parse_qs(parsed.query) == {
        "org": ["commune"],
        "bucket": ["mesures"],
        "precision": ["us"],
    }
    assert headers["Authorization"] == "Token s3cret"
    assert body == line_protocol(ROWS[:2])


def test_sink_failure_is_counted_not_raised() -> None:
    sink = InfluxSink(f"http://127.0.0.1:{free_port()}", "t", "o", "b", timeout_ms=500)
    try:
        assert sink.write(ROWS[:1]) is False
        assert sink.failures == 1
    finally:
        sink.close()
