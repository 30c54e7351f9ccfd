"""The YAML schema of a firmware profile. Unknown keys are errors; messages name the file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from territoire_kernel.errors import ConfigError

_Model = TypeVar("_Model", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NativeCodec(_Strict):
    native: str


class JsCodecSpec(_Strict):
    js: str = Field(description="path of the TS013 codec, relative to the profile file")
    # decodeUplink's data keys -> metric names; keys not listed are ignored.
    mapping: dict[str, str]


class LorawanSpec(_Strict):
    codec: NativeCodec | JsCodecSpec


class PointSpec(_Strict):
    metric: str
    function: Literal["coil", "discrete_input", "holding", "input"]
    address: int = Field(ge=0, le=65535)
    type: Literal["bool", "u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64"]
    scale: float = 1.0
    offset: float = 0.0
    byte_order: Literal["big", "little"] | None = None
    word_order: Literal["big", "little"] | None = None
    missing: list[int] = []


class WriteSpecDoc(_Strict):
    action: str
    function: Literal["coil", "holding"]
    address: int = Field(ge=0, le=65535)
    channels: int = Field(default=1, ge=1, le=64)
    value_param: str = "on"


class ModbusSpec(_Strict):
    byte_order: Literal["big", "little"] = "big"
    word_order: Literal["big", "little"] = "big"
    points: list[PointSpec] = Field(min_length=1)
    writes: list[WriteSpecDoc] = []


class RegisterValues(_Strict):
    function: Literal["coil", "discrete_input", "holding", "input"]
    address: int = Field(ge=0, le=65535)
    values: list[int | bool] = Field(min_length=1)


class Expected(_Strict):
    # Exactly these readings (a reading not listed is a failure), these event kinds in order,
    # and for each text here a warning containing it; or, with error, a CodecError.
    readings: dict[str, float] = {}
    events: list[str] = []
    warnings: list[str] = []
    error: bool = False


class GoldenCase(_Strict):
    name: str
    f_port: int | None = Field(default=None, ge=1, le=223)
    payload_hex: str | None = None
    registers: list[RegisterValues] | None = None
    expect: Expected

    @model_validator(mode="after")
    def _one_input(self) -> GoldenCase:
        if (self.payload_hex is None) == (self.registers is None):
            raise ValueError("give either payload_hex (with f_port) or registers")
        if self.payload_hex is not None:
            if self.f_port is None:
                raise ValueError("payload_hex needs f_port")
            bytes.fromhex(self.payload_hex)
        return self


class DownlinkCase(_Strict):
    name: str
    action: str
    params: dict[str, str | int | float | bool] = {}
    expect_f_port: int
    expect_hex: str


class ProfileSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    vendor: str
    model: str
    description: str = ""
    documentation: str = Field(description="the vendor document the decoder follows")
    lorawan: LorawanSpec | None = None
    downlink: NativeCodec | None = None
    modbus: ModbusSpec | None = None
    golden: list[GoldenCase] = Field(min_length=1)
    downlink_golden: list[DownlinkCase] = []

    @model_validator(mode="after")
    def _one_transport(self) -> ProfileSpec:
        if (self.lorawan is None) == (self.modbus is None):
            raise ValueError("a profile describes either lorawan or modbus")
        return self


class MetricSpec(_Strict):
    unit: str
    description: str = Field(min_length=1)
    personal_data: bool


class MetricCatalogue(_Strict):
    metrics: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")], MetricSpec]


def _field(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _load(model: type[_Model], path: Path) -> _Model:
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read: {exc}", source=str(path)) from None
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = _field(tuple(p for p in error["loc"] if p not in ("NativeCodec", "JsCodecSpec")))
        raise ConfigError(error["msg"], field=field, source=str(path)) from None


def load_spec(path: Path) -> ProfileSpec:
    return _load(ProfileSpec, path)


def load_metric_specs(path: Path) -> dict[str, MetricSpec]:
    return _load(MetricCatalogue, path).metrics
