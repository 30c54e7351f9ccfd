"""Modbus client framing: PDUs, RTU (CRC-16) over pyserial and TCP (MBAP) over sockets.

Small and explicit rather than a full client library: the bus scheduler needs
exact control of per-request timeouts and of what a failure means (silent
slave vs. broken link), and nothing else.
"""

from __future__ import annotations

import abc
import contextlib
import socket
import struct
import time
from collections.abc import Sequence
from typing import Any

from territoire_kernel.errors import TerritoireError

READ_CODES = {"coil": 1, "discrete_input": 2, "holding": 3, "input": 4}
MAX_READ = {"coil": 2000, "discrete_input": 2000, "holding": 125, "input": 125}


class ModbusError(TerritoireError):
    """A Modbus request failed."""


class SlaveTimeoutError(ModbusError):
    """The slave did not answer in time (dead, unpowered, wrong id or wiring)."""


class LinkError(ModbusError):
    """The transport itself failed (port gone, connection refused or reset)."""


class ExceptionResponseError(ModbusError):
    """The slave answered with a Modbus exception: it is alive but refused."""

    def __init__(self, function: int, code: int):
        self.code = code
        names = {
            1: "illegal function",
            2: "illegal data address",
            3: "illegal data value",
            4: "device failure",
        }
        super().__init__(f"exception {code} ({names.get(code, 'other')}) to function {function}")


# --------------------------------------------------------------------------- PDUs


def read_request(function: str, address: int, count: int) -> bytes:
    if not 0 <= address <= 0xFFFF or not 1 <= count <= MAX_READ[function]:
        raise ModbusError(f"bad read of {count} {function} at {address}")
    return struct.pack(">BHH", READ_CODES[function], address, count)


def parse_read_response(function: str, count: int, pdu: bytes) -> list[int] | list[bool]:
    code = READ_CODES[function]
    _check_exception(code, pdu)
    if len(pdu) < 2 or pdu[1] != len(pdu) - 2:
        raise ModbusError(f"malformed response to function {code}")
    data = pdu[2:]
    if code in (1, 2):
        if len(data) != (count + 7) // 8:
            raise ModbusError(f"expected {count} bits, got {len(data)} bytes")
        return [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)]
    if len(data) != 2 * count:
        raise ModbusError(f"expected {count} registers, got {len(data)} bytes")
    return list(struct.unpack(f">{count}H", data))


def write_request(function: str, address: int, values: Sequence[Any]) -> bytes:
    if not values:
        raise ModbusError("a write needs at least one value")
    if function == "coil":
        if len(values) == 1:
            return struct.pack(">BHH", 5, address, 0xFF00 if values[0] else 0)
        packed = bytearray((len(values) + 7) // 8)
        for i, value in enumerate(values):
            if value:
                packed[i // 8] |= 1 << (i % 8)
        return struct.pack(">BHHB", 15, address, len(values), len(packed)) + bytes(packed)
    if function == "holding":
        words = [int(v) & 0xFFFF for v in values]
        if len(words) == 1:
            return struct.pack(">BHH", 6, address, words[0])
        return struct.pack(f">BHHB{len(words)}H", 16, address, len(words), 2 * len(words), *words)
    raise ModbusError(f"cannot write to {function!r}")


def check_write_response(request: bytes, pdu: bytes) -> None:
    _check_exception(request[0], pdu)
    # Single writes echo the request; multiple writes echo address and quantity.
    if pdu[:5] != request[:5]:
        raise ModbusError("write response does not match the request")


def _check_exception(code: int, pdu: bytes) -> None:
    if not pdu:
        raise ModbusError("empty response")
    if pdu[0] == code | 0x80:
        raise ExceptionResponseError(code, pdu[1] if len(pdu) > 1 else 0)
    if pdu[0] != code:
        raise ModbusError(f"response to function {pdu[0]} while {code} was asked")


def crc16(frame: bytes) -> int:
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


# --------------------------------------------------------------------------- transports


class Transport(abc.ABC):
    """One serial port or TCP link; used by exactly one bus thread."""

    description: str

    @abc.abstractmethod
    def transact(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        """Send a request PDU, return the response PDU; raises SlaveTimeoutError or LinkError."""

    @abc.abstractmethod
    def close(self) -> None: ...


class TcpTransport(Transport):
    def __init__(self, host: str, port: int, connect_timeout: float = 2.0):
        self.host, self.port, self.connect_timeout = host, port, connect_timeout
        self.description = f"tcp://{host}:{port}"
        self._sock: socket.socket | None = None
        self._tid = 0

    def _connect(self) -> socket.socket:
        if self._sock is None:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
            except OSError as exc:
                raise LinkError(f"cannot connect to {self.description}: {exc}") from None
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
        return self._sock

    def transact(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        sock = self._connect()
        self._tid = (self._tid + 1) & 0xFFFF
        try:
            sock.sendall(struct.pack(">HHHB", self._tid, 0, len(pdu) + 1, unit) + pdu)
            deadline = time.monotonic() + timeout
            while True:
                header = self._recv(sock, 7, deadline)
                tid, protocol, length, _unit = struct.unpack(">HHHB", header)
                if protocol != 0 or not 2 <= length <= 254:
                    raise LinkError(f"garbage on {self.description}")
                body = self._recv(sock, length - 1, deadline)
                if tid == self._tid:
                    return body
                # A late answer to a request that already timed out: skip it.
        except SlaveTimeoutError:
            raise
        except OSError as exc:
            self.close()
            raise LinkError(f"{self.description}: {exc}") from None
        except LinkError:
            self.close()
            raise

    def _recv(self, sock: socket.socket, size: int, deadline: float) -> bytes:
        data = b""
        while len(data) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SlaveTimeoutError(f"no answer on {self.description}")
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(size - len(data))
            except TimeoutError:
                raise SlaveTimeoutError(f"no answer on {self.description}") from None
            if not chunk:
                raise LinkError(f"{self.description} closed the connection")
            data += chunk
        return data

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


def _rtu_length(frame: bytes) -> int | None:
    """Total length of an RTU response once enough of it is known."""
    if len(frame) < 2:
        return None
    code = frame[1]
    if code & 0x80:
        return 5
    if code in (1, 2, 3, 4):
        return None if len(frame) < 3 else 5 + frame[2]
    return 8  # 5, 6, 15, 16 echo address and value/quantity


class RtuTransport(Transport):
    def __init__(self, port: str, baudrate: int = 9600, parity: str = "N", stopbits: int = 1):
        self.port, self.baudrate, self.parity, self.stopbits = port, baudrate, parity, stopbits
        self.description = f"{port}@{baudrate}"
        self._serial: Any = None

    def _open(self) -> Any:
        if self._serial is None:
            import serial

            try:
                self._serial = serial.Serial(
                    self.port, self.baudrate, parity=self.parity, stopbits=self.stopbits, timeout=0.05
                )
            except (OSError, serial.SerialException, ValueError) as exc:
                raise LinkError(f"cannot open {self.port}: {exc}") from None
        return self._serial

    def transact(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        import serial

        port = self._open()
        frame = bytes([unit]) + pdu
        frame += struct.pack("<H", crc16(frame))
        try:
            port.reset_input_buffer()  # drop a late answer to an earlier request
            port.write(frame)
            deadline = time.monotonic() + timeout
            answer = b""
            while True:
                expected = _rtu_length(answer)
                if expected is not None and len(answer) >= expected:
                    break
                if time.monotonic() >= deadline:
                    raise SlaveTimeoutError(f"slave {unit} silent on {self.description}")
                port.timeout = max(0.001, min(0.05, deadline - time.monotonic()))
                answer += port.read((expected or 3) - len(answer))
        except (OSError, serial.SerialException) as exc:
            self.close()
            raise LinkError(f"{self.description}: {exc}") from None
        answer = answer[:expected]
        if crc16(answer[:-2]) != struct.unpack("<H", answer[-2:])[0] or answer[0] != unit:
            raise SlaveTimeoutError(f"corrupt answer from slave {unit} on {self.description}")
        return answer[1:-2]

    def close(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(Exception):
                self._serial.close()
            self._serial = None
