"""Measure a gateway from outside, the same way whichever gateway it is.

- CPU and peak memory of a process tree, read from /proc (no psutil needed);
- bytes on the wire: a loopback TCP proxy between the gateway and the broker
  counts every byte of the MQTT stream (payloads, MQTT headers, PUBACKs,
  pings; not the TCP/IP headers, equal per segment for both);
- readings that reached the broker: a persistent-session subscriber decodes
  each message with a gateway-specific function and keeps the distinct
  (device, metric, time) keys, so a redelivered message counts once.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

CLK_TCK = os.sysconf("SC_CLK_TCK")
Key = tuple[str, str, int]  # device, metric, time in ms
Decoder = Callable[[str, bytes], Iterable[Key]]


# --------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    """pid and its live descendants."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parents.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, ()))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the tree (live processes, plus children they have reaped)."""
    ticks = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = _stat_fields(member)
            # utime, stime, cutime, cstime are fields 14-17 of stat, 11-14 after the name.
            ticks += sum(int(f) for f in fields[11:15])
    return ticks / CLK_TCK


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def peak_rss_mb(pid: int) -> float:
    """Sum over the tree of each process's peak resident set (VmHWM)."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            total += _status_kb(member, "VmHWM")
    return total / 1024


# --------------------------------------------------------------------------- wire


class ByteCountingProxy:
    """Forwards 127.0.0.1:port to the broker and counts bytes each way.

    When the broker is down the upstream connect fails and the client's
    connection is closed, as a refused connection would be.
    """

    def __init__(self, upstream_port: int, host: str = "127.0.0.1"):
        self.upstream = (host, upstream_port)
        self._listener = socket.create_server((host, 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self.up = 0  # client -> broker
        self.down = 0  # broker -> client
        self.connections = 0
        self._open: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.up, self.down

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=2)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
                self._open.update((client, server))
            for src, dst, up in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, up), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                with self._lock:
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                with self._lock:
                    self._open.discard(sock)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            socks = list(self._open)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


# --------------------------------------------------------------------------- readings


class ReadingCounter:
    """Subscribes (QoS 1, persistent session: the broker keeps our queue across its restart)."""

    def __init__(self, port: int, topics: Sequence[str], decoder: Decoder, client_id: str):
        self._decoder = decoder
        self._topics = tuple(topics)
        self._lock = threading.Lock()
        self.keys: set[Key] = set()
        self.arrivals = 0  # readings received, duplicates included
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(1, 1)
        subscribed = threading.Event()

        def on_connect(client: mqtt.Client, *_args: object) -> None:
            client.subscribe([(t, 1) for t in topics])

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("subscriber could not subscribe")

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        try:
            keys = list(self._decoder(message.topic, bytes(message.payload)))
        except Exception:
            return
        with self._lock:
            self.arrivals += len(keys)
            self.keys.update(keys)

    def snapshot(self) -> tuple[int, int]:
        """(arrivals, distinct readings)."""
        with self._lock:
            return self.arrivals, len(self.keys)

    def times_by_device(self, t0_ms: int, t1_ms: int) -> dict[str, Counter[int]]:
        """For each device, how many distinct metrics arrived at each timestamp in [t0, t1]."""
        out: dict[str, Counter[int]] = {}
        with self._lock:
            for device, _metric, ts in self.keys:
                if t0_ms <= ts <= t1_ms:
                    out.setdefault(device, Counter())[ts] += 1
        return out

    def close(self) -> None:
        # Unsubscribe first: the broker would otherwise queue for this persistent session for ever.
        done = threading.Event()
        self.client.on_unsubscribe = lambda *_a: done.set()
        self.client.unsubscribe(list(self._topics))
        done.wait(2)
        self.client.disconnect()
        self.client.loop_stop()


@dataclass(frozen=True)
class Loss:
    polls: int
    expected: int
    received: int

    @property
    def lost(self) -> int:
        return self.expected - self.received


def match_polls(
    polls: dict[str, list[float]], received: dict[str, Counter[int]], per_poll: int, tolerance_s: float
) -> Loss:
    """Pair each poll the simulator answered with the nearest unused timestamp a gateway sent.

    polls: device -> times (s) at which the simulator answered the poll's marker register.
    A poll without a timestamp within tolerance counts per_poll readings lost;
    one whose timestamp carries fewer metrics counts the difference.
    """
    n_polls = expected = got = 0
    for device, times in polls.items():
        stamps = sorted(received.get(device, Counter()).items())
        keys = [ts for ts, _n in stamps]
        used = [False] * len(keys)
        for t in sorted(times):
            n_polls += 1
            expected += per_poll
            ms = t * 1000
            i = bisect.bisect_left(keys, ms)
            best = None
            for j in (i - 1, i, i + 1):
                near = 0 <= j < len(keys) and not used[j] and abs(keys[j] - ms) <= tolerance_s * 1000
                if near and (best is None or abs(keys[j] - ms) < abs(keys[best] - ms)):
                    best = j
            if best is not None:
                used[best] = True
                got += min(stamps[best][1], per_poll)
    return Loss(n_polls, expected, got)


def wait_stable(read: Callable[[], int], quiet_s: float, timeout_s: float) -> int:
    """Wait until read() has not changed for quiet_s (or timeout_s passed); return its last value."""
    deadline = time.monotonic() + timeout_s
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        value = read()
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last
