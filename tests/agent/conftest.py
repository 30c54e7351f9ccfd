"""Helpers for the agent core tests: configs, an MQTT listener, a running agent."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import AgentConfig, parse_config
from edge_agent.sources.base import CommandError, Sink, Source, Stamper
from territoire.services import MosquittoServer
from territoire_kernel.records import AttrValue, Reading
from territoire_kernel.wire import Message, decode


def agent_doc(tmp_path: Path, port: int, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "tenant": "is-sur-tille",
        "gateway_id": "gw-test",
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "tls": False,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
            "status_interval_s": 1,
        },
        "buffer": {
            "path": str(tmp_path / "buffer.sqlite3"),
            "flush_interval_s": 0.1,
            "batch_max_readings": 50,
        },
        "clock": {"policy": "trusted"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc


def agent_config(tmp_path: Path, port: int, **overrides: Any) -> AgentConfig:
    return parse_config(agent_doc(tmp_path, port, **overrides), "test")


class Listener:
    """Subscribes to a topic filter and keeps every decoded message."""

    def __init__(self, port: int, topic: str, *, persistent: bool = False):
        self.messages: list[tuple[str, Message, bool]] = []
        self._cond = threading.Condition()
        # persistent: the broker keeps our subscription and queues for us across its own restart.
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"listener-{time.monotonic_ns()}",
            clean_session=not persistent,
        )
        self.client.reconnect_delay_set(1, 1)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(5), "listener could not subscribe"

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        decoded = decode(bytes(message.payload))
        with self._cond:
            self.messages.append((message.topic, decoded, bool(message.retain)))
            self._cond.notify_all()

    def of_type(self, kind: type) -> list[Any]:
        with self._cond:
            return [m for _t, m, _r in self.messages if isinstance(m, kind)]

    def wait_for(self, predicate: Callable[[Listener], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; got {len(self.messages)} messages")
                self._cond.wait(min(left, 0.1))

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def listen(mqtt_broker: MosquittoServer) -> Iterator[Callable[..., Listener]]:
    made: list[Listener] = []

    def make(topic: str, persistent: bool = False) -> Listener:
        listener = Listener(mqtt_broker.port, topic, persistent=persistent)
        made.append(listener)
        return listener

    yield make
    for listener in made:
        listener.close()


class CounterSource(Source):
    """Emits counter = 0, 1, 2 ... as readings of one device, every `interval_s`."""

    def __init__(self, stamper: Stamper, interval_s: float = 0.005, per_tick: int = 5):
        self.name = "counter"
        self.stamper = stamper
        self.interval_s = interval_s
        self.per_tick = per_tick
        self.sent = 0
        self.paused = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, sink: Sink) -> None:
        def run() -> None:
            while not self._stop.wait(self.interval_s):
                if self.paused.is_set():
                    continue
                time_us, quality = self.stamper()
                batch = [
                    Reading("counter-1", "count", float(self.sent + i), time_us, None, quality)
                    for i in range(self.per_tick)
                ]
                self.sent += self.per_tick
                sink(batch, [])

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def owns(self, device_id: str) -> bool:
        return device_id == "counter-1"

    def execute(self, device_id: str, action: str, params: Mapping[str, AttrValue]) -> Future[str]:
        future: Future[str] = Future()
        future.set_exception(CommandError("a counter takes no commands"))
        return future

    def health(self) -> dict[str, object]:
        return {"sent": self.sent}
