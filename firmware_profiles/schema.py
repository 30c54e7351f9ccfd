"""The YAML schema of a firmware profile. Unknown keys are errors; messages name the file and field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml

from territoire_kernel.errors import ConfigError

from .checked import Check, Model, ValidationError, loc_text

_Model = TypeVar("_Model", bound=Model)
Function = Literal["coil", "discrete_input", "holding", "input"]
Address = Annotated[int, Check(ge=0, le=65535)]


@dataclass(frozen=True, kw_only=True)
class NativeCodec(Model):
    native: str


@dataclass(frozen=True, kw_only=True)
class JsCodecSpec(Model):
    js: Annotated[str, Check(description="path of the TS013 codec, relative to the profile file")]
    # decodeUplink's data keys -> metric names; keys not listed are ignored.
    mapping: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class LorawanSpec(Model):
    codec: NativeCodec | JsCodecSpec


@dataclass(frozen=True, kw_only=True)
class PointSpec(Model):
    metric: str
    function: Function
    address: Address
    type: Literal["bool", "u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64"]
    scale: float = 1.0
    offset: float = 0.0
    byte_order: Literal["big", "little"] | None = None
    word_order: Literal["big", "little"] | None = None
    missing: list[int] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class WriteSpecDoc(Model):
    action: str
    function: Literal["coil", "holding"]
    address: Address
    channels: Annotated[int, Check(ge=1, le=64)] = 1
    value_param: str = "on"


@dataclass(frozen=True, kw_only=True)
class ModbusSpec(Model):
    byte_order: Literal["big", "little"] = "big"
    word_order: Literal["big", "little"] = "big"
    points: Annotated[list[PointSpec], Check(min_length=1)]
    writes: list[WriteSpecDoc] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class RegisterValues(Model):
    function: Function
    address: Address
    values: Annotated[list[int | bool], Check(min_length=1)]


@dataclass(frozen=True, kw_only=True)
class Expected(Model):
    # Exactly these readings (a reading not listed is a failure), these event kinds in order,
    # and for each text here a warning containing it; or, with error, a CodecError.
    readings: dict[str, float] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: bool = False


@dataclass(frozen=True, kw_only=True)
class GoldenCase(Model):
    name: str
    f_port: Annotated[int, Check(ge=1, le=223)] | None = None
    payload_hex: str | None = None
    registers: list[RegisterValues] | None = None
    expect: Expected

    def check(self) -> None:
        if (self.payload_hex is None) == (self.registers is None):
            raise ValueError("give either payload_hex (with f_port) or registers")
        if self.payload_hex is not None:
            if self.f_port is None:
                raise ValueError("payload_hex needs f_port")
            bytes.fromhex(self.payload_hex)


@dataclass(frozen=True, kw_only=True)
class DownlinkCase(Model):
    name: str
    action: str
    params: dict[str, str | int | float | bool] = field(default_factory=dict)
    expect_f_port: int
    expect_hex: str


@dataclass(frozen=True, kw_only=True)
class ProfileSpec(Model):
    id: Annotated[str, Check(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
    vendor: str
    model: str
    description: str = ""
    documentation: Annotated[str, Check(description="the vendor document the decoder follows")]
    lorawan: LorawanSpec | None = None
    downlink: NativeCodec | None = None
    modbus: ModbusSpec | None = None
    golden: Annotated[list[GoldenCase], Check(min_length=1)]
    downlink_golden: list[DownlinkCase] = field(default_factory=list)

    def check(self) -> None:
        if (self.lorawan is None) == (self.modbus is None):
            raise ValueError("a profile describes either lorawan or modbus")


@dataclass(frozen=True, kw_only=True)
class MetricSpec(Model):
    unit: str
    description: Annotated[str, Check(min_length=1)]
    personal_data: bool


@dataclass(frozen=True, kw_only=True)
class MetricCatalogue(Model):
    metrics: dict[Annotated[str, Check(pattern=r"^[a-z][a-z0-9_]*$")], MetricSpec]


def _field(location: tuple[int | str, ...]) -> str:
    return loc_text(location) or "(top level)"


def _load(model: type[_Model], path: Path) -> _Model:
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read: {exc}", source=str(path)) from None
    try:
        return model.validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigError(error.msg, field=_field(error.loc), source=str(path)) from None


def load_spec(path: Path) -> ProfileSpec:
    return _load(ProfileSpec, path)


def load_metric_specs(path: Path) -> dict[str, MetricSpec]:
    return _load(MetricCatalogue, path).metrics
