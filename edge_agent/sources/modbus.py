"""Modbus RTU / TCP source: a bus scheduler plus the devices' register maps."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass

from territoire_kernel.errors import TerritoireError
from territoire_kernel.records import AttrValue

from .base import CommandError, Sink, Source, Stamper
from .bus import BusDevice, BusScheduler
from .modbus_wire import (
    ExceptionResponseError,
    SlaveTimeoutError,
    Transport,
    check_write_response,
    write_request,
)
from .profiles import RegisterMapLike


@dataclass(frozen=True)
class ModbusDeviceSpec:
    device_id: str
    unit: int
    register_map: RegisterMapLike
    interval_s: float = 10.0
    timeout_s: float = 0.5


def failed(message: str) -> Future[str]:
    future: Future[str] = Future()
    future.set_exception(CommandError(message))
    return future


class ModbusSource(Source):
    def __init__(
        self,
        name: str,
        transport: Transport,
        devices: list[ModbusDeviceSpec],
        stamper: Stamper,
        *,
        inter_frame_gap_s: float = 0.005,
        max_registers: int = 125,
        max_gap: int = 4,
        max_backoff_s: float = 60.0,
    ):
        self.name = name
        bus_devices = [
            BusDevice(
                device_id=spec.device_id,
                unit=spec.unit,
                interval_s=spec.interval_s,
                timeout_s=spec.timeout_s,
                register_map=spec.register_map,
                blocks=list(spec.register_map.plan_reads(max_registers=max_registers, max_gap=max_gap)),
            )
            for spec in devices
        ]
        self._by_id = {d.device_id: d for d in bus_devices}
        self.bus = BusScheduler(
            name,
            transport,
            bus_devices,
            stamper,
            inter_frame_gap_s=inter_frame_gap_s,
            max_backoff_s=max_backoff_s,
        )

    def start(self, sink: Sink) -> None:
        self.bus.start(sink)

    def stop(self, timeout: float = 5.0) -> None:
        self.bus.stop(timeout)

    def owns(self, device_id: str) -> bool:
        return device_id in self._by_id

    def execute(self, device_id: str, action: str, params: Mapping[str, AttrValue]) -> Future[str]:
        device = self._by_id.get(device_id)
        if device is None:
            return failed(f"{self.name} has no device {device_id!r}")
        try:
            ops = list(device.register_map.encode_write(action, dict(params)))
        except (TerritoireError, ValueError, KeyError, TypeError) as exc:
            return failed(f"{device_id}: cannot encode {action!r}: {exc}")
        if not ops:
            return failed(f"{device_id}: {action!r} writes nothing")

        def job(_transport: Transport) -> str:
            done = []
            for op in ops:
                request = write_request(op.function, op.address, list(op.values))
                try:
                    answer = self.bus.request(device.unit, request, device.timeout_s)
                except SlaveTimeoutError:
                    raise CommandError(f"{device_id} (slave {device.unit}) did not answer") from None
                except ExceptionResponseError as exc:
                    raise CommandError(f"{device_id} refused the write: {exc}") from None
                check_write_response(request, answer)
                done.append(f"{op.function} {op.address}={list(op.values)}")
            self.bus.poll_soon(device)  # read the new state back at once
            return f"{action} on {device_id}: wrote " + ", ".join(done)

        return self.bus.submit(job)

    def health(self) -> dict[str, object]:
        stats = self.bus.stats
        return {
            "name": self.name,
            "link": self.bus.transport.description,
            "connected": stats.link_up,
            "requests": stats.requests,
            "timeouts": stats.timeouts,
            "link_errors": stats.link_errors,
            "unexpected_errors": stats.unexpected_errors,
            "devices": {
                d.device_id: {
                    "unit": d.unit,
                    "answering": d.last_ok_us is not None and d.failures == 0,
                    "last_ok_us": d.last_ok_us,
                    "polls": d.polls,
                    "errors": d.errors,
                    "last_error": d.last_error,
                }
                for d in self.bus.devices
            },
        }
