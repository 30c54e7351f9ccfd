"""Record a live MQTT stream to a file and replay it at x1 to x10,000.

The file holds one JSON line per message: receive time, topic, base64
payload, QoS and retain flag, so recordings are diffable and append-safe.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

MAX_SPEED = 10_000.0


@dataclass(frozen=True)
class Recorded:
    time_s: float
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False

    def to_line(self) -> str:
        return json.dumps(
            {
                "t": self.time_s,
                "topic": self.topic,
                "payload": base64.b64encode(self.payload).decode(),
                "qos": self.qos,
                "retain": self.retain,
            },
            separators=(",", ":"),
        )

    @staticmethod
    def from_line(line: str) -> Recorded:
        doc = json.loads(line)
        return Recorded(
            float(doc["t"]),
            str(doc["topic"]),
            base64.b64decode(doc["payload"]),
            int(doc.get("qos", 1)),
            bool(doc.get("retain", False)),
        )


def record(
    host: str,
    port: int,
    topics: list[str],
    path: Path,
    *,
    duration_s: float | None = None,
    max_messages: int | None = None,
) -> int:
    """Subscribe and append every message to `path` until the duration or count is reached."""
    done = threading.Event()
    count = 0
    lock = threading.Lock()
    with path.open("a", encoding="utf-8") as out:

        def on_connect(
            client: mqtt.Client, userdata: object, flags: object, rc: object, props: object = None
        ) -> None:
            for name in topics:
                client.subscribe(name, qos=1)

        def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            nonlocal count
            with lock:
                out.write(
                    Recorded(time.time(), msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)).to_line()
                    + "\n"
                )
                count += 1
                if max_messages is not None and count >= max_messages:
                    done.set()

        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        client.on_connect = on_connect
        client.on_message = on_message
        client.connect(host, port)
        client.loop_start()
        done.wait(duration_s)
        client.loop_stop()
        client.disconnect()
    return count


def read_recording(path: Path) -> Iterator[Recorded]:
    with path.open(encoding="utf-8") as src:
        for line in src:
            if line.strip():
                yield Recorded.from_line(line)


def replay(path: Path, host: str, port: int, *, speed: float = 1.0, sleep: object = time.sleep) -> int:
    """Publish a recording again, keeping its gaps divided by `speed` (1..10,000)."""
    if not 1.0 <= speed <= MAX_SPEED:
        raise ValueError(f"speed must be between 1 and {MAX_SPEED:g}")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.connect(host, port)
    client.loop_start()
    count = 0
    first: float | None = None
    start = time.monotonic()
    try:
        for msg in read_recording(path):
            first = msg.time_s if first is None else first
            delay = start + (msg.time_s - first) / speed - time.monotonic()
            if delay > 0 and callable(sleep):
                sleep(delay)
            client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain).wait_for_publish(
                timeout=30
            )
            count += 1
    finally:
        client.loop_stop()
        client.disconnect()
    return count
