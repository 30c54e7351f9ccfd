"""The bus scheduler: one thread owns one serial port or TCP link.

Rules (docs/sources.md):
- requests are strictly sequential, separated by at least `inter_frame_gap_s`;
- each device has its own timeout (< 1 s) and poll interval;
- a device that stops answering is retried with exponential back-off, so it
  costs the others at most one timeout per back-off period;
- a broken link (port gone, connection refused) pauses polling and is retried
  with its own back-off; device schedules are kept;
- commands run on the same thread, between two polls, before any due poll;
- any exception is counted and logged, never fatal to the thread.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from territoire_kernel.records import Event, Quality

from .base import CommandError, Sink, Stamper
from .modbus_wire import (
    ExceptionResponseError,
    LinkError,
    ModbusError,
    SlaveTimeoutError,
    Transport,
    parse_read_response,
    read_request,
)
from .profiles import RegisterMapLike

log = logging.getLogger(__name__)

# Consecutive silent polls after which a device is reported unreachable.
UNREACHABLE_AFTER = 3


@dataclass(eq=False)
class BusDevice:
    device_id: str
    unit: int
    interval_s: float
    timeout_s: float
    register_map: RegisterMapLike
    blocks: list[Any]
    next_due: float = 0.0
    failures: int = 0
    polls: int = 0
    errors: int = 0
    last_ok_us: int | None = None
    last_error: str = ""
    unreachable: bool = False


Job = Callable[[Transport], str]


@dataclass
class BusStats:
    requests: int = 0
    timeouts: int = 0
    link_errors: int = 0
    unexpected_errors: int = 0
    commands: int = 0
    link_up: bool = False


class BusScheduler:
    def __init__(
        self,
        name: str,
        transport: Transport,
        devices: list[BusDevice],
        stamper: Stamper,
        *,
        inter_frame_gap_s: float = 0.005,
        max_backoff_s: float = 60.0,
        link_retry_max_s: float = 10.0,
    ):
        self.name = name
        self.transport = transport
        self.devices = devices
        self.stamper = stamper
        self.inter_frame_gap_s = inter_frame_gap_s
        self.max_backoff_s = max_backoff_s
        self.link_retry_max_s = link_retry_max_s
        self.stats = BusStats()
        self._commands: queue.SimpleQueue[tuple[Job, Future[str]]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sink: Sink | None = None
        self._last_io = 0.0
        self._link_failures = 0
        self._link_retry_at = 0.0

    # ------------------------------------------------------------------ control

    def start(self, sink: Sink) -> None:
        self._sink = sink
        now = time.monotonic()
        for i, device in enumerate(self.devices):
            # Spread first polls a little so devices with one interval do not bunch up.
            device.next_due = now + min(device.interval_s, 1.0) * i / max(len(self.devices), 1)
        self._thread = threading.Thread(target=self._run, name=f"bus:{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.transport.close()
        while not self._commands.empty():
            _, future = self._commands.get_nowait()
            future.set_exception(CommandError(f"{self.name} stopped before the command ran"))

    def submit(self, job: Job) -> Future[str]:
        future: Future[str] = Future()
        if self._stop.is_set():
            future.set_exception(CommandError(f"{self.name} is stopped"))
            return future
        self._commands.put((job, future))
        self._wake.set()
        return future

    def poll_soon(self, device: BusDevice) -> None:
        device.next_due = time.monotonic()
        self._wake.set()

    # ------------------------------------------------------------------ thread

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # the loop must survive anything
                self.stats.unexpected_errors += 1
                log.exception("%s: unexpected error in the bus loop", self.name)
                self._stop.wait(0.5)

    def _step(self) -> None:
        self._run_commands()
        now = time.monotonic()
        if self._link_retry_at > now:
            self._sleep(self._link_retry_at - now)
            return
        if not self.devices:
            self._sleep(1.0)
            return
        device = min(self.devices, key=lambda d: d.next_due)
        if device.next_due > now:
            self._sleep(device.next_due - now)
            return
        self._poll(device)

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _run_commands(self) -> None:
        while not self._commands.empty() and not self._stop.is_set():
            job, future = self._commands.get_nowait()
            if not future.set_running_or_notify_cancel():
                continue
            self.stats.commands += 1
            try:
                future.set_result(job(self.transport))
            except CommandError as exc:
                future.set_exception(exc)
            except LinkError as exc:
                self._link_down(exc)
                future.set_exception(CommandError(str(exc)))
            except Exception as exc:
                future.set_exception(CommandError(f"{type(exc).__name__}: {exc}"))

    def request(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        """One request with the inter-frame gap respected; for polls and commands."""
        gap = self._last_io + self.inter_frame_gap_s - time.monotonic()
        if gap > 0:
            time.sleep(gap)
        self.stats.requests += 1
        try:
            answer = self.transport.transact(unit, pdu, timeout)
        except SlaveTimeoutError:
            self.stats.timeouts += 1
            raise
        finally:
            self._last_io = time.monotonic()
        self._link_up()
        return answer

    def _poll(self, device: BusDevice) -> None:
        device.polls += 1
        values: dict[Any, list[int] | list[bool]] = {}
        try:
            for block in device.blocks:
                pdu = self.request(
                    device.unit, read_request(block.function, block.address, block.count), device.timeout_s
                )
                values[block] = parse_read_response(block.function, block.count, pdu)
            time_us, quality = self.stamper()
            readings = list(device.register_map.decode(values, device_id=device.device_id, time_us=time_us))
            if quality:
                readings = [dataclasses.replace(r, quality=r.quality | quality) for r in readings]
            self._device_ok(device, time_us, quality)
            if readings and self._sink is not None:
                self._sink(readings, [])
        except SlaveTimeoutError as exc:
            self._device_failed(device, str(exc))
        except LinkError as exc:
            device.next_due = time.monotonic() + device.interval_s
            self._link_down(exc)
        except ExceptionResponseError as exc:
            # Alive but refusing (wrong map or address): keep the normal pace, report it.
            device.errors += 1
            device.last_error = str(exc)
            device.next_due = max(device.next_due + device.interval_s, time.monotonic())
        except Exception as exc:  # decoding or sink faults must not stop the bus
            device.errors += 1
            device.last_error = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, ModbusError):
                log.warning("%s: %s: %s", self.name, device.device_id, device.last_error)
            device.next_due = max(device.next_due + device.interval_s, time.monotonic())

    def _device_ok(self, device: BusDevice, time_us: int, quality: Quality) -> None:
        device.last_ok_us = time_us
        if device.unreachable:
            log.info("%s: %s answers again", self.name, device.device_id)
            self._emit_event(device, "device_reachable", time_us, quality)
        device.failures = 0
        device.unreachable = False
        device.next_due = max(device.next_due + device.interval_s, time.monotonic())

    def _device_failed(self, device: BusDevice, reason: str) -> None:
        device.errors += 1
        device.failures += 1
        device.last_error = reason
        backoff = device.interval_s * 2 ** max(device.failures - 1, 0)
        device.next_due = time.monotonic() + min(backoff, max(self.max_backoff_s, device.interval_s))
        if device.failures == UNREACHABLE_AFTER:
            device.unreachable = True
            log.warning("%s: %s does not answer (%s)", self.name, device.device_id, reason)
            time_us, quality = self.stamper()
            self._emit_event(device, "device_unreachable", time_us, quality)

    def _emit_event(self, device: BusDevice, kind: str, time_us: int, quality: Quality) -> None:
        if self._sink is not None:
            event = Event(device.device_id, kind, time_us, {"unit": device.unit, "bus": self.name}, quality)
            self._sink([], [event])

    def _link_down(self, exc: Exception) -> None:
        self.stats.link_errors += 1
        self._link_failures += 1
        if self.stats.link_up or self._link_failures == 1:
            log.warning("%s: link down: %s", self.name, exc)
        self.stats.link_up = False
        self.transport.close()
        delay = min(0.2 * 2 ** min(self._link_failures - 1, 10), self.link_retry_max_s)
        self._link_retry_at = time.monotonic() + delay

    def _link_up(self) -> None:
        if not self.stats.link_up and self._link_failures:
            log.info("%s: link up again after %d failures", self.name, self._link_failures)
        self.stats.link_up = True
        self._link_failures = 0
        self._link_retry_at = 0.0
