"""Loading profiles into a catalogue and turning payloads into kernel records."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from territoire_kernel.errors import CodecError, ConfigError, ValidationError
from territoire_kernel.records import AttrValue, Event, Quality, Reading

from .native import DECODERS, ENCODERS, NATIVE_METRICS
from .registers import Point, RegisterMap, WriteSpec
from .schema import JsCodecSpec, ProfileSpec, load_metric_specs, load_spec

if TYPE_CHECKING:  # QuickJS is loaded only by a profile with a JavaScript codec, when it first runs
    from .jscodec import JsCodec

_PACKAGE_DIR = Path(__file__).resolve().parent
BUILTIN_DIR = _PACKAGE_DIR / "profiles"
METRICS_FILE = _PACKAGE_DIR / "metrics.yaml"


@dataclass(frozen=True)
class MetricInfo:
    name: str
    unit: str
    description: str
    personal_data: bool = False


def load_metrics(path: Path = METRICS_FILE) -> dict[str, MetricInfo]:
    """The metric catalogue; a malformed entry is a ConfigError naming the file and the metric."""
    catalogue = load_metric_specs(path)
    return {name: MetricInfo(name, m.unit, m.description, m.personal_data) for name, m in catalogue.items()}


@dataclass(frozen=True)
class Decoded:
    readings: tuple[Reading, ...] = ()
    events: tuple[Event, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass
class Profile:
    spec: ProfileSpec
    source: Path
    metrics: Mapping[str, MetricInfo]
    register_map: RegisterMap | None = None
    _js: JsCodec | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.spec.id

    def decode_uplink(self, payload: bytes, f_port: int, *, device_id: str, time_us: int) -> Decoded:
        lorawan = self.spec.lorawan
        if lorawan is None:
            raise CodecError(f"{self.id} is a Modbus profile: it has no LoRaWAN decoder")
        if isinstance(lorawan.codec, JsCodecSpec):
            values, events, warnings = self._decode_js(lorawan.codec, payload, f_port, time_us)
        else:
            result = DECODERS[lorawan.codec.native](bytes(payload), f_port)
            values, events, warnings = result.values, result.events, result.warnings
        try:
            readings = tuple(
                Reading(device_id, metric, value, time_us, self._unit(metric), quality)
                for metric, value, quality in values
            )
            records = tuple(Event(device_id, kind, time_us, attrs) for kind, attrs in events)
        except ValidationError as exc:  # e.g. a non-finite value from a user codec
            raise CodecError(f"{self.id}: {exc}") from None
        return Decoded(readings, records, tuple(warnings))

    def _unit(self, metric: str) -> str:
        info = self.metrics.get(metric)
        if info is None:  # only a decoder bug gets here: names are checked when profiles load
            raise CodecError(
                f"{self.id}: the decoder produced {metric!r}, which is not in the metric catalogue"
            )
        return info.unit

    def _decode_js(
        self, codec: JsCodecSpec, payload: bytes, f_port: int, time_us: int
    ) -> tuple[list[tuple[str, float, Quality]], list[tuple[str, dict[str, AttrValue]]], list[str]]:
        if self._js is None:
            self._js = _js_codec(self.source.parent / codec.js, self.id)
        try:
            received = datetime.fromtimestamp(time_us / 1e6, UTC).isoformat().replace("+00:00", "Z")
        except (TypeError, ValueError, OverflowError, OSError):
            raise CodecError(f"{self.id}: reception time {time_us!r} is not a valid time") from None
        data, warnings = self._js.decode(payload, f_port, received, {})
        values: list[tuple[str, float, Quality]] = []
        for key, metric in codec.mapping.items():
            value = data.get(key)
            if value is None:
                continue
            if isinstance(value, bool):
                value = float(value)
            if not isinstance(value, int | float):
                raise CodecError(f"{self.id}: data.{key} is {type(value).__name__}, a number was expected")
            values.append((metric, float(value), Quality.GOOD))
        return values, [], warnings

    def encode_downlink(self, action: str, params: Mapping[str, AttrValue]) -> tuple[int, bytes]:
        if self.spec.downlink is not None:
            return ENCODERS[self.spec.downlink.native](action, params)
        lorawan = self.spec.lorawan
        if lorawan is not None and isinstance(lorawan.codec, JsCodecSpec):
            if self._js is None:
                self._js = _js_codec(self.source.parent / lorawan.codec.js, self.id)
            return self._js.encode({"action": action, **params})
        raise CodecError(f"{self.id} has no downlink encoder")


def _js_codec(path: Path, name: str) -> JsCodec:
    from .jscodec import JsCodec

    return JsCodec(path.read_text("utf-8"), name)


class Catalog:
    def __init__(self, profiles: Sequence[Profile], metrics: Mapping[str, MetricInfo]):
        self._profiles = {p.id: p for p in profiles}
        self.metrics = dict(metrics)

    def get(self, profile_id: str) -> Profile:
        try:
            return self._profiles[profile_id]
        except KeyError:
            close = difflib.get_close_matches(profile_id, self._profiles, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(self.ids())}"
            raise ConfigError(f"unknown firmware profile {profile_id!r}{hint}", field="profile") from None

    def ids(self) -> list[str]:
        return sorted(self._profiles)

    def __iter__(self) -> Iterator[Profile]:
        return iter(self._profiles[i] for i in self.ids())

    def __len__(self) -> int:
        return len(self._profiles)


def build_profile(spec: ProfileSpec, source: Path, metrics: Mapping[str, MetricInfo]) -> Profile:
    where = str(source)
    register_map = None
    if spec.modbus is not None:
        register_map = _register_map(spec, where, metrics)
    for name in _lorawan_metrics(spec, where):
        if name not in metrics:
            raise ConfigError(f"metric {name!r} is not in firmware_profiles/metrics.yaml", field="lorawan.codec", source=where)  # fmt: skip
    for index, case in enumerate(spec.golden):
        for name in case.expect.readings:
            if name not in metrics:
                raise ConfigError(f"metric {name!r} is not in firmware_profiles/metrics.yaml", field=f"golden[{index}].expect.readings", source=where)  # fmt: skip
    if spec.downlink is not None and spec.downlink.native not in ENCODERS:
        raise ConfigError(
            f"no native encoder {spec.downlink.native!r}", field="downlink.native", source=where
        )
    return Profile(spec, source, metrics, register_map)


def _lorawan_metrics(spec: ProfileSpec, where: str) -> list[str]:
    if spec.lorawan is None:
        return []
    codec = spec.lorawan.codec
    if isinstance(codec, JsCodecSpec):
        if not (Path(where).parent / codec.js).is_file():
            raise ConfigError(f"codec file {codec.js!r} not found", field="lorawan.codec.js", source=where)
        names = list(codec.mapping.values())
        if len(set(names)) != len(names):
            raise ConfigError(
                "two data keys map to the same metric", field="lorawan.codec.mapping", source=where
            )
        return names
    if codec.native not in DECODERS:
        known = ", ".join(sorted(DECODERS))
        raise ConfigError(f"no native decoder {codec.native!r} (known: {known})", field="lorawan.codec.native", source=where)  # fmt: skip
    return list(NATIVE_METRICS[codec.native])


def _register_map(spec: ProfileSpec, where: str, metrics: Mapping[str, MetricInfo]) -> RegisterMap:
    assert spec.modbus is not None
    modbus, seen = spec.modbus, set[str]()
    points: list[Point] = []
    for index, doc in enumerate(modbus.points):
        field_name = f"modbus.points[{index}]"
        if doc.metric in seen:
            raise ConfigError(
                f"metric {doc.metric!r} appears twice", field=f"{field_name}.metric", source=where
            )
        if doc.metric not in metrics:
            raise ConfigError(f"metric {doc.metric!r} is not in firmware_profiles/metrics.yaml", field=f"{field_name}.metric", source=where)  # fmt: skip
        if (doc.type == "bool") != (doc.function in ("coil", "discrete_input")):
            raise ConfigError("bool goes with coils and discrete inputs only", field=f"{field_name}.type", source=where)  # fmt: skip
        seen.add(doc.metric)
        point = Point(
            doc.metric, metrics[doc.metric].unit, doc.function, doc.address, doc.type, doc.scale, doc.offset,
            doc.byte_order or modbus.byte_order, doc.word_order or modbus.word_order, tuple(doc.missing),
        )  # fmt: skip
        for other in points:
            if other.function == point.function and point.address < other.end and other.address < point.end:
                raise ConfigError(
                    f"registers {point.address}..{point.end - 1} overlap {other.metric!r}",
                    field=f"{field_name}.address", source=where,
                )  # fmt: skip
        points.append(point)
    writes = [WriteSpec(w.action, w.function, w.address, w.channels, w.value_param) for w in modbus.writes]
    return RegisterMap(points, writes)


def load_catalog(extra_dirs: Sequence[Path | str] = ()) -> Catalog:
    """Built-in profiles plus those in extra_dirs; a later directory may override an id."""
    metrics = load_metrics()
    profiles: dict[str, Profile] = {}
    for directory in (BUILTIN_DIR, *map(Path, extra_dirs)):
        if not directory.is_dir():
            raise ConfigError("not a directory of firmware profiles", source=str(directory))
        here: dict[str, Path] = {}  # within one directory an id is unique; a later directory overrides
        for path in sorted(directory.glob("*.yaml")):
            profile = build_profile(load_spec(path), path, metrics)
            if profile.id in here:
                raise ConfigError(f"id {profile.id!r} is already used by {here[profile.id].name}", field="id", source=str(path))  # fmt: skip
            here[profile.id] = path
            profiles[profile.id] = profile
    return Catalog(list(profiles.values()), metrics)
