"""Simulated Modbus field devices: energy meters and a relay module switching a lighting circuit.

Register layouts follow the vendors' documented maps (addresses zero-based on
the wire, i.e. the manual's register number minus one):
- Schneider iEM3155: holding registers; total active power (float32, kW) at
  register 3060, total active energy import (int64, Wh) at 3204, average L-N
  voltage (float32, V) at 3036, frequency (float32, Hz) at 3110.
- Eastron SDM630: input registers, float32; phase 1 voltage at 30001, total
  system power (W) at 30053, frequency at 30071, total import energy (kWh) at
  30073.
- Generic relay module: coils 0..7 are the outputs; discrete inputs mirror them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .modbus_server import RegisterBank

METER_MODELS = ("iem3155", "sdm630")


class RelayModule(RegisterBank):
    def __init__(self, channels: int = 8):
        super().__init__()
        self.channels = channels
        # Called just before and just after coils change, so a meter downstream
        # integrates the old power up to the switch and the new one after it.
        self.around_switch: Callable[[], None] = lambda: None
        for i in range(channels):
            self.tables["coil"][i] = False
            self.tables["discrete_input"][i] = False

    def write(self, function: str, address: int, values: list[object]) -> None:
        if function == "coil":
            self.around_switch()
        super().write(function, address, values)
        if function == "coil":
            self.around_switch()

    def on_write(self, function: str, address: int, values: list[object]) -> None:
        if function == "coil":
            for i, value in enumerate(values):
                self.tables["discrete_input"][address + i] = bool(value)

    def state(self, channel: int = 0) -> bool:
        with self.lock:
            return bool(self.tables["coil"].get(channel, False))

    def switch(self, channel: int, on: bool) -> None:
        self.write("coil", channel, [on])


class EnergyMeter(RegisterBank):
    """A meter whose energy counter integrates `power_w()` over (scaled) time."""

    def __init__(
        self,
        model: str,
        power_w: Callable[[], float],
        *,
        energy_wh: float = 1_250_000.0,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__()
        if model not in METER_MODELS:
            raise ValueError(f"unknown meter model {model!r}; choose one of {METER_MODELS}")
        self.model = model
        self.power_w = power_w
        self.energy_wh = energy_wh
        self.time_scale = time_scale
        self.clock = clock
        self._last = clock()
        self._power = power_w()
        self.refresh()

    def advance(self) -> None:
        now = self.clock()
        # The power seen since the last update is integrated before it changes.
        self.energy_wh += self._power * (now - self._last) * self.time_scale / 3600.0
        self._last = now
        self._power = self.power_w()

    def refresh(self) -> None:
        self.advance()
        power, energy = self._power, self.energy_wh
        if self.model == "iem3155":
            self.set_float32("holding", 3035, 231.0 if power else 230.4)
            self.set_float32("holding", 3059, power / 1000.0)
            self.set_uint("holding", 3203, int(energy), 4)
            self.set_float32("holding", 3109, 50.0)
        else:
            self.set_float32("input", 0, 231.0)
            self.set_float32("input", 42, 231.0)  # average line-to-neutral voltage, read by the profile
            self.set_float32("input", 52, power)
            self.set_float32("input", 70, 50.0)
            self.set_float32("input", 72, energy / 1000.0)


class LightingCircuit:
    """A relay channel switching a lighting load, metered upstream."""

    def __init__(
        self, meter_model: str = "iem3155", load_w: float = 1800.0, channel: int = 0, time_scale: float = 1.0
    ):
        self.relay = RelayModule()
        self.channel = channel
        self.load_w = load_w
        self.meter = EnergyMeter(meter_model, self._power, time_scale=time_scale)
        self.relay.around_switch = self._around_switch

    def _around_switch(self) -> None:
        with self.meter.lock:
            self.meter.advance()

    def _power(self) -> float:
        return self.load_w if self.relay.tables["coil"].get(self.channel, False) else 0.0
