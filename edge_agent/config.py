"""The agent's one YAML config: validated by pydantic, unknown keys rejected.

`load_config` turns every problem (unreadable file, YAML syntax, a wrong field)
into a single ConfigError that names the file and the field path, e.g.
``agent.yaml:sources[0].port: Input should be a valid integer``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from territoire_kernel.errors import ConfigError
from territoire_kernel.errors import ValidationError as KernelValidationError
from territoire_kernel.ids import gateway_id as check_gateway_id
from territoire_kernel.ids import tenant_id as check_tenant_id

from .sources.config import SourceConfig

DEFAULT_STATE_DIR = Path("/var/lib/territoire-agent")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttConfig(_Strict):
    host: str = Field(min_length=1)
    port: int = Field(default=8883, ge=1, le=65535)
    version: Literal["5", "3.1.1"] = "5"
    tls: bool = True
    ca_file: Path | None = None  # None: the system's trust store
    cert_file: Path | None = None  # client certificate, if the broker wants one
    key_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None  # preferred: keeps the secret out of the config
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    keepalive_s: int = Field(default=60, ge=5, le=3600)
    # The broker keeps our subscription and queued commands this long while we are offline.
    session_expiry_s: int = Field(default=86_400, ge=0, le=30 * 86_400)
    # Unacknowledged batches on the wire; far below paho's 65,535 message ids.
    max_inflight: int = Field(default=20, ge=1, le=1000)
    reconnect_min_s: float = Field(default=1.0, gt=0, le=60)
    reconnect_max_s: float = Field(default=120.0, gt=0, le=3600)
    # Pace of a backlog replay (None: as fast as PUBACKs come back).
    max_batches_per_s: float | None = Field(default=None, gt=0)
    status_interval_s: float = Field(default=60.0, ge=1, le=3600)

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if (self.password is not None or self.password_file is not None) and self.username is None:
            raise ValueError("a password needs a username")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        return self

    def read_password(self) -> str | None:
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            try:
                return self.password_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read {self.password_file}: {exc}", field="mqtt.password_file"
                ) from None
        return None


class BufferConfig(_Strict):
    path: Path = DEFAULT_STATE_DIR / "buffer.sqlite3"
    # Stored batch bytes; when exceeded the OLDEST batches are dropped and counted.
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024)
    max_age_s: float | None = Field(default=30 * 86_400.0, gt=0)
    batch_max_readings: int = Field(default=500, ge=1, le=50_000)
    # One SQLite commit per interval: at most this much is lost on kill -9.
    flush_interval_s: float = Field(default=5.0, ge=0.05, le=300)
    synchronous: Literal["normal", "full"] = "normal"
    # With synchronous=normal, power loss can also lose commits since the last checkpoint.
    checkpoint_interval_s: float = Field(default=60.0, ge=1, le=3600)


class ClockConfig(_Strict):
    # kernel: the kernel's NTP status (adjtimex, what `timedatectl` shows as "synchronized");
    # marker: a file that the time daemon creates once synchronised; trusted: a board with an RTC.
    policy: Literal["kernel", "marker", "trusted"] = "kernel"
    marker_file: Path = Path("/run/systemd/timesync/synchronized")
    min_year: int = Field(default=2024, ge=2000, le=2099)
    # Batches stamped before synchronisation wait this long for a correction, then go out flagged.
    hold_unsynced_s: float = Field(default=6 * 3600.0, ge=0)
    jump_threshold_s: float = Field(default=2.0, gt=0)


class CommandsConfig(_Strict):
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_duration_s: float = Field(default=4 * 3600.0, gt=0)  # longest timed switch accepted
    keep_ids_days: float = Field(default=30.0, gt=0)


class MetricsConfig(_Strict):
    # Local Prometheus endpoint; loopback by default so the gateway exposes nothing on 4G.
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=1, le=65535)


class AgentConfig(_Strict):
    tenant: str
    gateway_id: str
    mqtt: MqttConfig
    buffer: BufferConfig = BufferConfig()
    clock: ClockConfig = ClockConfig()
    commands: CommandsConfig = CommandsConfig()
    metrics: MetricsConfig | None = None
    sources: list[SourceConfig] = Field(default_factory=list)
    profile_dirs: list[Path] = Field(default_factory=list)

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str) -> str:
        return _kernel_check(check_tenant_id, value)

    @field_validator("gateway_id")
    @classmethod
    def _gateway(cls, value: str) -> str:
        return _kernel_check(check_gateway_id, value)

    @model_validator(mode="after")
    def _unique_sources(self) -> AgentConfig:
        names = [source.name for source in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate source names: {dupes}")
        devices = [d.device_id for source in self.sources for d in source.devices]
        dupes = sorted({d for d in devices if devices.count(d) > 1})
        if dupes:
            raise ValueError(f"device ids must be unique across sources: {dupes}")
        return self

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"territoire-{self.tenant}-{self.gateway_id}"[:64]


def _kernel_check(check: Any, value: str) -> str:
    try:
        return str(check(value))
    except KernelValidationError as exc:
        raise ValueError(str(exc)) from None


_SOURCE_TAGS = {"modbus_rtu", "modbus_tcp", "chirpstack", "tts", "serial_lora"}


def field_path(loc: tuple[int | str, ...]) -> str:
    """('sources', 0, 'modbus_tcp', 'port') -> 'sources[0].port'."""
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(previous, int) and part in _SOURCE_TAGS:
            pass  # pydantic's discriminator step, not a field the user wrote
        else:
            out += f".{part}" if out else part
        previous = part
    return out


def _one_message(exc: ValidationError, source: str) -> ConfigError:
    errors = exc.errors()
    first = errors[0]
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; see `territoire agent schema`)"
    elif first["type"] == "missing":
        message = "required field is missing"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ConfigError(message, source=source, field=field_path(tuple(first["loc"])) or None)


def parse_config(doc: object, source: str = "config") -> AgentConfig:
    if not isinstance(doc, dict):
        raise ConfigError("the config must be a YAML mapping (key: value)", source=source)
    try:
        return AgentConfig.model_validate(doc)
    except ValidationError as exc:
        raise _one_message(exc, source) from None


def load_config(path: Path | str) -> AgentConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", source=str(path)) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"YAML syntax error at {where}{problem}", source=str(path)) from None
    return parse_config(doc, str(path))


def schema() -> str:
    """The JSON Schema of the config, for editors (yaml-language-server)."""
    doc = AgentConfig.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "territoire edge agent configuration"
    return json.dumps(doc, indent=2, sort_keys=True)
