"""Source configuration (pydantic, unknown keys rejected) and the factory the agent core calls."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from territoire_kernel.errors import ConfigError
from territoire_kernel.ids import device_id as check_device_id

from .base import Source, Stamper
from .profiles import CatalogLike

_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Device(_Strict):
    device_id: str
    profile: str

    @field_validator("device_id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        return check_device_id(value)


class ModbusDeviceConfig(_Device):
    slave_id: int = Field(ge=1, le=247)
    poll_interval_s: float = Field(default=10.0, gt=0, le=86_400)
    # A healthy slave answers in tens of milliseconds; a long timeout only delays the others.
    timeout_s: float = Field(default=0.5, ge=0.02, lt=1.0)


class _ModbusBus(_Strict):
    name: str = Field(pattern=_NAME)
    devices: list[ModbusDeviceConfig] = Field(min_length=1)
    max_registers: int = Field(default=125, ge=1, le=125)
    max_gap: int = Field(default=4, ge=0, le=64)
    max_backoff_s: float = Field(default=60.0, ge=1, le=3600)

    @model_validator(mode="after")
    def _unique(self) -> _ModbusBus:
        for attr in ("slave_id", "device_id"):
            seen = [getattr(d, attr) for d in self.devices]
            dupes = {v for v in seen if seen.count(v) > 1}
            if dupes:
                raise ValueError(f"duplicate {attr} on one bus: {sorted(map(str, dupes))}")
        return self


class ModbusRtuConfig(_ModbusBus):
    type: Literal["modbus_rtu"]
    port: str
    baudrate: int = Field(default=9600, ge=1200, le=230_400)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    # None: the Modbus RTU rule, 3.5 character times, at least 1.75 ms.
    inter_frame_gap_ms: float | None = Field(default=None, ge=0, le=1000)

    def gap_s(self) -> float:
        if self.inter_frame_gap_ms is not None:
            return self.inter_frame_gap_ms / 1000
        return max(3.5 * 11 / self.baudrate, 0.00175)


class ModbusTcpConfig(_ModbusBus):
    type: Literal["modbus_tcp"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    inter_frame_gap_ms: float = Field(default=0.0, ge=0, le=1000)

    def gap_s(self) -> float:
        return self.inter_frame_gap_ms / 1000


class MqttBrokerConfig(_Strict):
    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)


class LnsDeviceConfig(_Device):
    dev_eui: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{16}$")
    lns_device_id: str | None = None  # The Things Stack end-device id

    @model_validator(mode="after")
    def _matchable(self) -> LnsDeviceConfig:
        if self.dev_eui is None and self.lns_device_id is None:
            raise ValueError("give dev_eui or lns_device_id so uplinks can be matched")
        return self


class ChirpstackConfig(_Strict):
    type: Literal["chirpstack"]
    name: str = Field(pattern=_NAME)
    broker: MqttBrokerConfig
    application_id: str = "+"  # "+": every application the broker account may read
    devices: list[LnsDeviceConfig] = Field(min_length=1)
    link_quality: bool = True


class TtsConfig(_Strict):
    type: Literal["tts"]
    name: str = Field(pattern=_NAME)
    broker: MqttBrokerConfig
    application_id: str
    tenant_id: str = ""  # empty on The Things Stack Open Source
    devices: list[LnsDeviceConfig] = Field(min_length=1)
    link_quality: bool = True


class SerialLoraDeviceConfig(_Device):
    node: int = Field(ge=0, le=255)  # first byte of each P2P frame
    f_port: int = Field(default=1, ge=1, le=223)  # the port the profile's decoder expects


class SerialLoraConfig(_Strict):
    type: Literal["serial_lora"]
    name: str = Field(pattern=_NAME)
    port: str
    module: Literal["rak3172"] = "rak3172"
    baudrate: int = Field(default=115_200, ge=1200, le=921_600)
    frequency_hz: int = Field(default=868_100_000, ge=150_000_000, le=960_000_000)
    spreading_factor: int = Field(default=7, ge=5, le=12)
    bandwidth_khz: Literal[125, 250, 500] = 125
    coding_rate: int = Field(default=0, ge=0, le=3)  # 0: 4/5 ... 3: 4/8
    preamble: int = Field(default=8, ge=2, le=65535)
    tx_power_dbm: int = Field(default=14, ge=5, le=22)
    devices: list[SerialLoraDeviceConfig] = Field(min_length=1)


SourceConfig = Annotated[
    ModbusRtuConfig | ModbusTcpConfig | ChirpstackConfig | TtsConfig | SerialLoraConfig,
    Field(discriminator="type"),
]


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
