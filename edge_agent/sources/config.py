"""Source configuration (validated dataclasses, unknown keys rejected) and the factory the agent core calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from firmware_profiles.checked import Check, Model, convert
from territoire_kernel.errors import ConfigError
from territoire_kernel.ids import device_id as check_device_id

from .base import Source, Stamper
from .profiles import CatalogLike

_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Name = Annotated[str, Check(pattern=_NAME)]


@dataclass(frozen=True, kw_only=True)
class _Device(Model):
    device_id: Annotated[str, Check(call=check_device_id)]
    profile: str


@dataclass(frozen=True, kw_only=True)
class ModbusDeviceConfig(_Device):
    slave_id: Annotated[int, Check(ge=1, le=247)]
    poll_interval_s: Annotated[float, Check(gt=0, le=86_400)] = 10.0
    # A healthy slave answers in tens of milliseconds; a long timeout only delays the others.
    timeout_s: Annotated[float, Check(ge=0.02, lt=1.0)] = 0.5


@dataclass(frozen=True, kw_only=True)
class _ModbusBus(Model):
    name: Name
    devices: Annotated[list[ModbusDeviceConfig], Check(min_length=1)]
    max_registers: Annotated[int, Check(ge=1, le=125)] = 125
    max_gap: Annotated[int, Check(ge=0, le=64)] = 4
    max_backoff_s: Annotated[float, Check(ge=1, le=3600)] = 60.0

    def check(self) -> None:
        for attr in ("slave_id", "device_id"):
            seen = [getattr(d, attr) for d in self.devices]
            dupes = {v for v in seen if seen.count(v) > 1}
            if dupes:
                raise ValueError(f"duplicate {attr} on one bus: {sorted(map(str, dupes))}")


@dataclass(frozen=True, kw_only=True)
class ModbusRtuConfig(_ModbusBus):
    type: Literal["modbus_rtu"]
    port: str
    baudrate: Annotated[int, Check(ge=1200, le=230_400)] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    # None: the Modbus RTU rule, 3.5 character times, at least 1.75 ms.
    inter_frame_gap_ms: Annotated[float, Check(ge=0, le=1000)] | None = None

    def gap_s(self) -> float:
        if self.inter_frame_gap_ms is not None:
            return self.inter_frame_gap_ms / 1000
        return max(3.5 * 11 / self.baudrate, 0.00175)


@dataclass(frozen=True, kw_only=True)
class ModbusTcpConfig(_ModbusBus):
    type: Literal["modbus_tcp"]
    host: str
    port: Annotated[int, Check(ge=1, le=65535)] = 502
    inter_frame_gap_ms: Annotated[float, Check(ge=0, le=1000)] = 0.0

    def gap_s(self) -> float:
        return self.inter_frame_gap_ms / 1000


@dataclass(frozen=True, kw_only=True)
class MqttBrokerConfig(Model):
    host: str
    port: Annotated[int, Check(ge=1, le=65535)] = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    keepalive_s: Annotated[int, Check(ge=5, le=3600)] = 30


@dataclass(frozen=True, kw_only=True)
class LnsDeviceConfig(_Device):
    dev_eui: Annotated[str, Check(pattern=r"^[0-9a-fA-F]{16}$")] | None = None
    lns_device_id: str | None = None  # The Things Stack end-device id

    def check(self) -> None:
        if self.dev_eui is None and self.lns_device_id is None:
            raise ValueError("give dev_eui or lns_device_id so uplinks can be matched")


@dataclass(frozen=True, kw_only=True)
class ChirpstackConfig(Model):
    type: Literal["chirpstack"]
    name: Name
    broker: MqttBrokerConfig
    application_id: str = "+"  # "+": every application the broker account may read
    devices: Annotated[list[LnsDeviceConfig], Check(min_length=1)]
    link_quality: bool = True


@dataclass(frozen=True, kw_only=True)
class TtsConfig(Model):
    type: Literal["tts"]
    name: Name
    broker: MqttBrokerConfig
    application_id: str
    tenant_id: str = ""  # empty on The Things Stack Open Source
    devices: Annotated[list[LnsDeviceConfig], Check(min_length=1)]
    link_quality: bool = True


@dataclass(frozen=True, kw_only=True)
class SerialLoraDeviceConfig(_Device):
    node: Annotated[int, Check(ge=0, le=255)]  # first byte of each P2P frame
    f_port: Annotated[int, Check(ge=1, le=223)] = 1  # the port the profile's decoder expects


@dataclass(frozen=True, kw_only=True)
class SerialLoraConfig(Model):
    type: Literal["serial_lora"]
    name: Name
    port: str
    module: Literal["rak3172"] = "rak3172"
    baudrate: Annotated[int, Check(ge=1200, le=921_600)] = 115_200
    frequency_hz: Annotated[int, Check(ge=150_000_000, le=960_000_000)] = 868_100_000
    spreading_factor: Annotated[int, Check(ge=5, le=12)] = 7
    bandwidth_khz: Literal[125, 250, 500] = 125
    coding_rate: Annotated[int, Check(ge=0, le=3)] = 0  # 0: 4/5 ... 3: 4/8
    preamble: Annotated[int, Check(ge=2, le=65535)] = 8
    tx_power_dbm: Annotated[int, Check(ge=5, le=22)] = 14
    devices: Annotated[list[SerialLoraDeviceConfig], Check(min_length=1)]


# One of these, chosen by its `type` key.
SourceConfig = ModbusRtuConfig | ModbusTcpConfig | ChirpstackConfig | TtsConfig | SerialLoraConfig


def parse_source(document: object) -> SourceConfig:
    """One source's config from its YAML mapping; raises firmware_profiles.checked.ValidationError."""
    source: SourceConfig = convert(SourceConfig, document, ())
    return source


def _profile(catalog: CatalogLike, source: str, profile_id: str) -> object:
    try:
        return catalog.get(profile_id)
    except Exception as exc:  # the catalog's own "unknown profile" error, whatever its type
        raise ConfigError(f"unknown profile {profile_id!r}: {exc}", source=source, field="profile") from None


def build_source(config: SourceConfig, *, stamper: Stamper, catalog: CatalogLike) -> Source:
    """Turn one validated source config into a ready (not started) Source."""
    if isinstance(config, ModbusRtuConfig | ModbusTcpConfig):
        from .modbus import ModbusDeviceSpec, ModbusSource
        from .modbus_wire import RtuTransport, TcpTransport, Transport

        specs = []
        for device in config.devices:
            profile = _profile(catalog, config.name, device.profile)
            register_map = getattr(profile, "register_map", None)
            if register_map is None:
                raise ConfigError(
                    f"profile {device.profile!r} has no Modbus register map",
                    source=config.name,
                    field="profile",
                )
            specs.append(
                ModbusDeviceSpec(
                    device.device_id, device.slave_id, register_map, device.poll_interval_s, device.timeout_s
                )
            )
        transport: Transport
        if isinstance(config, ModbusRtuConfig):
            transport = RtuTransport(config.port, config.baudrate, config.parity, config.stopbits)
        else:
            transport = TcpTransport(config.host, config.port)
        return ModbusSource(
            config.name,
            transport,
            specs,
            stamper,
            inter_frame_gap_s=config.gap_s(),
            max_registers=config.max_registers,
            max_gap=config.max_gap,
            max_backoff_s=config.max_backoff_s,
        )
    if isinstance(config, ChirpstackConfig | TtsConfig):
        from .lns import LnsSource

        profiles = {d.profile: _profile(catalog, config.name, d.profile) for d in config.devices}
        return LnsSource(config, profiles, stamper)
    from .serial_lora import SerialLoraSource

    profiles = {d.profile: _profile(catalog, config.name, d.profile) for d in config.devices}
    return SerialLoraSource(config, profiles, stamper)
