"""A LoRa radio module on a serial port, in point-to-point receive mode.

Supported module: RAKwireless RAK3172 (and other RUI3 firmware modules) driven
by AT commands:
    AT+NWM=0                      LoRa P2P mode
    AT+P2P=freq:sf:bw:cr:pre:pwr  radio settings (bandwidth in kHz)
    AT+PRECV=65534                receive continuously
    +EVT:RXP2P:<rssi>:<snr>:<hex> one received frame (what the module prints)
    AT+PRECV=0 / AT+PSEND=<hex>   leave receive mode, send a frame
Frames are territoire's P2P convention: first byte the node number, then the
payload its profile decodes (as if it came on the configured FPort).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from territoire_kernel.errors import TerritoireError
from territoire_kernel.records import AttrValue, Reading

from .base import CommandError, Sink, Source, Stamper
from .config import SerialLoraConfig, SerialLoraDeviceConfig

log = logging.getLogger(__name__)
RX_PREFIX = "+EVT:RXP2P:"


class ModuleError(TerritoireError):
    """The module did not accept a command."""


class SerialLoraSource(Source):
    def __init__(self, config: SerialLoraConfig, profiles: Mapping[str, Any], stamper: Stamper):
        self.name = config.name
        self.config = config
        self.stamper = stamper
        self._devices = {d.node: (d, profiles[d.profile]) for d in config.devices}
        self._by_id = {d.device_id: (d, profiles[d.profile]) for d in config.devices}
        self._commands: queue.SimpleQueue[tuple[bytes, Future[str], str]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sink: Sink | None = None
        self._port: Any = None
        self.counters = {"frames": 0, "decoded": 0, "unknown_node": 0, "malformed": 0, "reconnects": 0}
        self.receiving = False

    def start(self, sink: Sink) -> None:
        self._sink = sink
        self._thread = threading.Thread(target=self._run, name=f"lora:{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        while not self._commands.empty():
            _, future, _ = self._commands.get_nowait()
            future.set_exception(CommandError(f"{self.name} stopped before the command ran"))

    def owns(self, device_id: str) -> bool:
        return device_id in self._by_id

    def execute(self, device_id: str, action: str, params: Mapping[str, AttrValue]) -> Future[str]:
        future: Future[str] = Future()
        entry = self._by_id.get(device_id)
        if entry is None:
            future.set_exception(CommandError(f"{self.name} has no device {device_id!r}"))
            return future
        device, profile = entry
        try:
            _f_port, payload = profile.encode_downlink(action, dict(params))
        except (TerritoireError, ValueError, KeyError, TypeError) as exc:
            future.set_exception(CommandError(f"{device_id}: cannot encode {action!r}: {exc}"))
            return future
        self._commands.put((bytes([device.node]) + payload, future, f"{action} to {device_id}"))
        return future

    def health(self) -> dict[str, object]:
        return {"name": self.name, "port": self.config.port, "receiving": self.receiving, **self.counters}

    # ------------------------------------------------------------------ thread

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                self._open_and_configure()
                delay = 0.5
                self._receive_loop()
            except Exception as exc:  # port unplugged, module rebooting, garbage: retry
                if self.receiving or self.counters["reconnects"] == 0:
                    log.warning("%s: serial LoRa module: %s", self.name, exc)
                self.receiving = False
                self.counters["reconnects"] += 1
            finally:
                self._close()
            self._stop.wait(delay)
            delay = min(delay * 2, 30.0)

    def _open_and_configure(self) -> None:
        import serial

        self._port = serial.Serial(self.config.port, self.config.baudrate, timeout=0.2)
        c = self.config
        self._command("AT")
        self._command("AT+NWM=0")
        self._command(
            f"AT+P2P={c.frequency_hz}:{c.spreading_factor}:{c.bandwidth_khz}:{c.coding_rate}:{c.preamble}:{c.tx_power_dbm}"
        )
        self._command("AT+PRECV=65534")
        self.receiving = True
        log.info(
            "%s: RAK3172 listening on %.1f MHz SF%d", self.name, c.frequency_hz / 1e6, c.spreading_factor
        )

    def _close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(Exception):
                self._port.close()
            self._port = None

    def _command(self, line: str, timeout: float = 2.0) -> None:
        """Send one AT command and wait for OK; frames arriving meanwhile are handled."""
        self._port.write(line.encode() + b"\r\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self._port.readline().decode("ascii", "replace").strip()
            if answer == "OK":
                return
            if answer.startswith("AT_") or answer.endswith("ERROR"):
                raise ModuleError(f"{line!r} refused: {answer}")
            if answer.startswith(RX_PREFIX):
                self._frame(answer)
        raise ModuleError(f"no answer to {line!r}")

    def _receive_loop(self) -> None:
        while not self._stop.is_set():
            while not self._commands.empty():
                frame, future, what = self._commands.get_nowait()
                try:
                    self._command("AT+PRECV=0")
                    self._command(f"AT+PSEND={frame.hex().upper()}")
                    future.set_result(f"{what}: sent {len(frame)} bytes over LoRa P2P")
                except ModuleError as exc:
                    future.set_exception(CommandError(str(exc)))
                finally:
                    self._command("AT+PRECV=65534")
            line = self._port.readline()
            if line:
                self._frame(line.decode("ascii", "replace").strip())

    def _frame(self, line: str) -> None:
        if not line.startswith(RX_PREFIX):
            return
        self.counters["frames"] += 1
        time_us, quality = self.stamper()
        try:
            rssi_text, snr_text, hex_text = line[len(RX_PREFIX) :].split(":")
            rssi, snr, frame = float(rssi_text), float(snr_text), bytes.fromhex(hex_text)
        except ValueError:
            self.counters["malformed"] += 1
            return
        if not frame:
            self.counters["malformed"] += 1
            return
        entry = self._devices.get(frame[0])
        if entry is None:
            self.counters["unknown_node"] += 1
            return
        device, profile = entry
        self._decode(device, profile, frame[1:], (rssi, snr), (time_us, quality))

    def _decode(
        self,
        device: SerialLoraDeviceConfig,
        profile: Any,
        payload: bytes,
        link: tuple[float, float],
        stamp: tuple[int, Any],
    ) -> None:
        (rssi, snr), (time_us, quality) = link, stamp
        readings: list[Reading] = [
            Reading(device.device_id, "rssi_dbm", rssi, time_us, "dBm", quality),
            Reading(device.device_id, "snr_db", snr, time_us, "dB", quality),
        ]
        events: list[Any] = []
        try:
            decoded = profile.decode_uplink(
                payload, device.f_port, device_id=device.device_id, time_us=time_us
            )
            readings = [
                *(r if not quality else _with_quality(r, quality) for r in decoded.readings),
                *readings,
            ]
            events = list(decoded.events)
            self.counters["decoded"] += 1
        except TerritoireError as exc:
            self.counters["malformed"] += 1
            log.debug("%s: %s: cannot decode: %s", self.name, device.device_id, exc)
        if self._sink is not None:
            self._sink(readings, events)


def _with_quality(reading: Reading, quality: Any) -> Reading:
    import dataclasses

    return dataclasses.replace(reading, quality=reading.quality | quality)
