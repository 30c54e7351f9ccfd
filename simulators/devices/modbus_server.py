"""Minimal Modbus slaves: a register bank, a Modbus TCP server and an RTU server on a pty.

Function codes 1, 2, 3, 4, 5, 6, 15 and 16. Unknown unit ids stay silent, as a
dead slave on RS-485 does, unless the TCP server plays a gateway and answers
exception 0x0B. Servers run in daemon threads and can be stopped and started
again on the same port to simulate outages.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import socketserver
import struct
import threading
import time
import tty
from collections.abc import Mapping
from typing import Any

FUNCTIONS = {1: "coil", 2: "discrete_input", 3: "holding", 4: "input"}


class IllegalAddressError(Exception):
    pass


class RegisterBank:
    """A slave's four tables; unset registers read as zero."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[int, Any]] = {name: {} for name in FUNCTIONS.values()}
        self.lock = threading.RLock()
        self.requests = 0

    def refresh(self) -> None:
        """Hook: update computed registers before a read."""

    def on_write(self, function: str, address: int, values: list[Any]) -> None:
        """Hook: react to a master's write."""

    def read(self, function: str, address: int, count: int) -> list[Any]:
        if address + count > 0x10000:
            raise IllegalAddressError
        with self.lock:
            self.refresh()
            table = self.tables[function]
            default: Any = False if function in ("coil", "discrete_input") else 0
            return [table.get(address + i, default) for i in range(count)]

    def write(self, function: str, address: int, values: list[Any]) -> None:
        if address + len(values) > 0x10000:
            raise IllegalAddressError
        with self.lock:
            for i, value in enumerate(values):
                self.tables[function][address + i] = value
            self.on_write(function, address, values)

    # Helpers to lay out typed values (big-endian words, as most meters).
    def set_float32(self, function: str, address: int, value: float) -> None:
        hi, lo = struct.unpack(">HH", struct.pack(">f", value))
        self.tables[function].update({address: hi, address + 1: lo})

    def set_uint(self, function: str, address: int, value: int, words: int) -> None:
        raw = int(value).to_bytes(2 * words, "big", signed=value < 0)
        for i in range(words):
            self.tables[function][address + i] = int.from_bytes(raw[2 * i : 2 * i + 2], "big")


def _exception(code: int, error: int) -> bytes:
    return bytes([code | 0x80, error])


def handle_pdu(bank: RegisterBank, pdu: bytes) -> bytes:
    """Answer one request PDU."""
    bank.requests += 1
    code = pdu[0] if pdu else 0
    try:
        if code in FUNCTIONS and len(pdu) == 5:
            address, count = struct.unpack(">HH", pdu[1:5])
            values = bank.read(FUNCTIONS[code], address, count)
            if code in (1, 2):
                packed = bytearray((count + 7) // 8)
                for i, bit in enumerate(values):
                    if bit:
                        packed[i // 8] |= 1 << (i % 8)
                return bytes([code, len(packed)]) + bytes(packed)
            return bytes([code, 2 * count]) + struct.pack(f">{count}H", *values)
        if code == 5 and len(pdu) == 5:
            address, value = struct.unpack(">HH", pdu[1:5])
            if value not in (0, 0xFF00):
                return _exception(code, 3)
            bank.write("coil", address, [value == 0xFF00])
            return pdu
        if code == 6 and len(pdu) == 5:
            address, value = struct.unpack(">HH", pdu[1:5])
            bank.write("holding", address, [value])
            return pdu
        if code == 15 and len(pdu) >= 6:
            address, count, size = struct.unpack(">HHB", pdu[1:6])
            data = pdu[6 : 6 + size]
            bank.write("coil", address, [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)])
            return pdu[:5]
        if code == 16 and len(pdu) >= 6:
            address, count, size = struct.unpack(">HHB", pdu[1:6])
            bank.write("holding", address, list(struct.unpack(f">{count}H", pdu[6 : 6 + 2 * count])))
            return pdu[:5]
        return _exception(code, 1)
    except IllegalAddressError:
        return _exception(code, 2)
    except (struct.error, IndexError):
        return _exception(code, 3)


# --------------------------------------------------------------------------- TCP


class ModbusTcpSimulator:
    """A Modbus TCP server for several unit ids (a meter, or a TCP/RTU gateway)."""

    def __init__(
        self,
        units: Mapping[int, RegisterBank],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        gateway_exceptions: bool = False,
        delays: Mapping[int, float] | None = None,
    ):
        self.units = dict(units)
        self.host, self.port = host, port
        self.gateway_exceptions = gateway_exceptions
        self.delays = dict(delays or {})
        self._server: socketserver.ThreadingTCPServer | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        sim = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                with sim._lock:
                    sim._connections.add(sock)
                try:
                    sim._serve(sock)
                finally:
                    with sim._lock:
                        sim._connections.discard(sock)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(
            target=server.serve_forever, args=(0.05,), daemon=True, name="modbus-tcp-sim"
        ).start()

    def stop(self) -> None:
        """Stop listening and drop every connection, as a device losing power."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for sock in list(self._connections):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._connections.clear()

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        while True:
            try:
                chunk = sock.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= 7:
                tid, _proto, length, unit = struct.unpack(">HHHB", buffer[:7])
                if len(buffer) < 6 + length:
                    break
                pdu, buffer = buffer[7 : 6 + length], buffer[6 + length :]
                answer = self._answer(unit, pdu)
                if answer is not None:
                    with contextlib.suppress(OSError):
                        sock.sendall(struct.pack(">HHHB", tid, 0, len(answer) + 1, unit) + answer)

    def _answer(self, unit: int, pdu: bytes) -> bytes | None:
        if unit in self.delays:
            time.sleep(self.delays[unit])
        bank = self.units.get(unit)
        if bank is None:
            return _exception(pdu[0] if pdu else 0, 0x0B) if self.gateway_exceptions else None
        return handle_pdu(bank, pdu)


# --------------------------------------------------------------------------- RTU on a pty


def crc16(frame: bytes) -> int:
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _request_length(frame: bytes) -> int | None:
    if len(frame) < 2:
        return None
    if frame[1] in (15, 16):
        return None if len(frame) < 7 else 9 + frame[6]
    return 8


class ModbusRtuSimulator:
    """RS-485 slaves behind a pseudo-terminal; the agent opens `.port`."""

    def __init__(self, units: Mapping[int, RegisterBank]):
        self.units = dict(units)
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="modbus-rtu-sim")
        self.frames = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        buffer = b""
        last = time.monotonic()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 512)
            except OSError:
                time.sleep(0.01)
                continue
            now = time.monotonic()
            if now - last > 0.05:
                buffer = b""  # a silence ends any partial frame, as the 3.5-character rule
            last = now
            buffer += chunk
            while (length := _request_length(buffer)) is not None and len(buffer) >= length:
                frame, buffer = buffer[:length], buffer[length:]
                if crc16(frame[:-2]) != struct.unpack("<H", frame[-2:])[0]:
                    buffer = b""
                    break
                self.frames += 1
                bank = self.units.get(frame[0])
                if bank is None:
                    continue  # nobody home: the master times out
                answer = bytes([frame[0]]) + handle_pdu(bank, frame[1:-2])
                os.write(self._master, answer + struct.pack("<H", crc16(answer)))
