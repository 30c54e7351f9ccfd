"""Prometheus metrics and the /metrics, /healthz, /readyz endpoints.

Each service owns its own CollectorRegistry, so several services (tests, two
workers in one process) never clash on metric names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .writer import FlushResult


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter("ingest_messages", "MQTT messages committed", registry=r)
        self.readings = Counter("ingest_readings", "Readings stored", registry=r)
        self.events = Counter("ingest_events", "Events stored", registry=r)
        self.batch_size = Histogram(
            "ingest_batch_items",
            "Readings and events per gateway batch",
            registry=r,
            buckets=(1, 10, 50, 100, 500, 1000, 5000, 20000, 50000),
        )
        self.flush_messages = Histogram(
            "ingest_flush_messages",
            "MQTT messages per database transaction",
            registry=r,
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
        )
        self.commit_seconds = Histogram(
            "ingest_commit_seconds",
            "Duration of one flush transaction",
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.lag_seconds = Histogram(
            "ingest_lag_seconds",
            "Commit time minus the newest measurement time of a batch",
            registry=r,
            buckets=(0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86400, 604800),
        )
        self.duplicates = Counter(
            "ingest_duplicates_removed",
            "Duplicates removed (redelivered batches, repeated rows)",
            ["kind"],
            registry=r,
        )
        self.dead_letters = Counter("ingest_dead_letters", "Messages stored as dead letters", registry=r)
        self.sequence_gaps = Counter(
            "ingest_sequence_gap_batches", "Batches missing in gateway sequences", registry=r
        )
        self.db_errors = Counter(
            "ingest_db_errors", "Flushes that failed on a database error and were retried", registry=r
        )
        self.queue_depth = Gauge(
            "ingest_queue_messages", "Messages received but not yet committed", registry=r
        )
        self.db_up = Gauge("ingest_db_up", "1 when the last database operation succeeded", registry=r)
        self.mqtt_subscribed = Gauge(
            "ingest_mqtt_subscribed", "1 when the MQTT subscriptions are active", registry=r
        )

    def record(self, result: FlushResult) -> None:
        self.messages.inc(result.messages)
        self.readings.inc(result.readings)
        self.events.inc(result.events)
        self.flush_messages.observe(result.messages)
        self.commit_seconds.observe(result.commit_seconds)
        for size in result.batch_sizes:
            self.batch_size.observe(size)
        for lag in result.lag_seconds:
            self.lag_seconds.observe(max(lag, 0.0))
        self.duplicates.labels("batch").inc(result.duplicate_batches)
        self.duplicates.labels("reading").inc(result.duplicate_readings)
        self.duplicates.labels("event").inc(result.duplicate_events)
        self.dead_letters.inc(len(result.dead_letters))
        self.sequence_gaps.inc(sum(last - first + 1 for _, _, first, last in result.gaps))


class HealthServer:
    """/metrics, /healthz (process alive) and /readyz (database and MQTT ready)."""

    def __init__(
        self,
        metrics: IngestMetrics,
        ready: Callable[[], tuple[bool, str]],
        port: int,
        host: str = "127.0.0.1",
    ):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, generate_latest(owner.metrics.registry), CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    self._send(200, b"ok\n")
                elif self.path == "/readyz":
                    ok, detail = owner.ready()
                    self._send(200 if ok else 503, (detail + "\n").encode())
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.metrics = metrics
        self.ready = ready
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="ingest-health", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
