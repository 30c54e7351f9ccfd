"""An embedded MQTT broker for the demo and tests when Mosquitto is not installed.

The broker is rumqttd (Rust), shipped compiled in the `iotcore` wheel
(`territoire[embedded]`). It speaks MQTT 3.1.1 and 5 with QoS 1, retained
messages, last wills, persistent sessions and shared subscriptions, but on one
listener per protocol version. So a child process runs it on two private
loopback ports and, in front, a small proxy on the public port that reads each
connection's CONNECT protocol level and forwards it to the matching listener:
ingest and the API (MQTT 5) and the simulators (3.1.1) share one address.

For demos and tests only: no TLS, no authentication or ACL, nothing persisted
(sessions and retained messages are lost when it stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from territoire.services import LOOPBACK, BrokerProcess, ServiceError, free_port, wait_for_port

PACKAGE = "iotcore"
MAX_PAYLOAD_BYTES = 8 * 1024 * 1024  # as MosquittoServer's max_packet_size
MQTT5_LEVEL = 5


def embedded_broker_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("iotcore") is not None


def embedded_broker_version() -> str:
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def rumqttd_config(v4_port: int, v5_port: int) -> str:
    # rumqttd keeps each filter's messages in memory, in at most max_segment_count
    # segments, dropping the oldest when full: a subscriber lagging further behind
    # would miss messages. 20 x 100 MiB is far above a demo preload's backlog.
    listener = """
[{version}.1]
name = "{version}-1"
listen = "{host}:{port}"
next_connection_delay_ms = 1
    [{version}.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = {payload}
    max_inflight_count = 1000
    dynamic_filters = true
"""
    text = "id = 0\n\n[router]\nid = 0\nmax_connections = 10010\nmax_outgoing_packet_count = 1000\n"
    text += "max_segment_size = 104857600\nmax_segment_count = 20\n"
    for name, port in (("v4", v4_port), ("v5", v5_port)):
        text += listener.format(version=name, host=LOOPBACK, port=port, payload=MAX_PAYLOAD_BYTES)
    return text


@dataclass
class EmbeddedBroker(BrokerProcess):
    """Same interface as `MosquittoServer` for what the demo and tests use."""

    workdir: Path
    port: int = 0
    host: str = LOOPBACK
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def description(self) -> str:
        return f"embedded MQTT broker (rumqttd from iotcore {embedded_broker_version()}, MQTT 3.1.1 and 5)"

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    def start(self, timeout: float = 10.0) -> None:
        if not embedded_broker_available():
            raise ServiceError(
                "no MQTT broker: install Debian's 'mosquitto' or the embedded one: "
                "pip install 'territoire[embedded]'"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        v4_port, v5_port = free_port(), free_port()
        config = self.workdir / "rumqttd.toml"
        config.write_text(rumqttd_config(v4_port, v5_port))
        ports = (self.port, v4_port, v5_port, os.getpid())
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self._process = subprocess.Popen(
            [sys.executable, "-m", "territoire.embedded_broker", str(config), self.host, *map(str, ports)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_port(self.port, timeout, self._process)
        except ServiceError as exc:
            self.kill()
            raise ServiceError(
                f"the embedded MQTT broker did not start: {exc}\n{self.log_text()[-2000:]}"
            ) from None


# --------------------------------------------------------------------------- child process


async def _protocol_level(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Reads a CONNECT up to its protocol level byte; returns the level and the bytes read."""
    head = await reader.readexactly(1)
    if head[0] >> 4 != 1:
        raise ValueError("the first packet is not CONNECT")
    for _ in range(4):  # remaining length: a variable byte integer of 1 to 4 bytes
        byte = await reader.readexactly(1)
        head += byte
        if not byte[0] & 0x80:
            break
    name_length = await reader.readexactly(2)
    rest = await reader.readexactly(int.from_bytes(name_length, "big") + 1)
    head += name_length + rest
    return rest[-1], head


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


async def _serve_client(
    client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter, v4: int, v5: int
) -> None:
    try:
        level, head = await asyncio.wait_for(_protocol_level(client_reader), 60)
        reader, writer = await asyncio.open_connection(LOOPBACK, v5 if level == MQTT5_LEVEL else v4)
    except (ValueError, asyncio.IncompleteReadError, TimeoutError, OSError):
        client_writer.close()  # not MQTT, or the broker is going away: as if refused
        return
    writer.write(head)
    # Whichever side closes first ends both, so the broker sees a client vanish
    # (and publishes its will) exactly as with a direct connection.
    tasks = [
        asyncio.create_task(_pipe(client_reader, writer)),
        asyncio.create_task(_pipe(reader, client_writer)),
    ]
    _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    writer.close()
    client_writer.close()


async def _proxy(host: str, port: int, v4: int, v5: int) -> None:
    server = await asyncio.start_server(
        lambda r, w: _serve_client(r, w, v4, v5), host, port, reuse_address=True
    )
    async with server:
        await server.serve_forever()


def _exit_with(parent: int) -> None:
    """Like Mosquitto's, the broker stops on SIGTERM; it also goes if its parent dies."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _child_main(argv: list[str]) -> None:
    import logging

    from iotcore.iotcore import IotCoreBroker

    # rumqttd logs every routed packet at ERROR level through its tracing spans.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("rumqttd").setLevel(logging.CRITICAL)
    config, host, *numbers = argv
    port, v4, v5, parent = map(int, numbers)
    broker = IotCoreBroker(config_path=config)
    # run_forever releases the GIL and has no shutdown API: it ends with this process.
    threading.Thread(target=broker.run_forever, name="rumqttd", daemon=True).start()
    threading.Thread(target=_exit_with, args=(parent,), name="parent-watch", daemon=True).start()
    wait_for_port(v4, 10)
    wait_for_port(v5, 10)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_proxy(host, port, v4, v5))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
