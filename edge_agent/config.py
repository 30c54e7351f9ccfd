"""The agent's one YAML config: validated (firmware_profiles.checked), unknown keys rejected.

`load_config` turns every problem (unreadable file, YAML syntax, a wrong field)
into a single ConfigError that names the file and the field path, e.g.
``agent.yaml:sources[0].port: Input should be a valid integer``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import yaml

from firmware_profiles.checked import Check, Model, Secret, ValidationError, json_schema, loc_text
from territoire_kernel.errors import ConfigError
from territoire_kernel.ids import gateway_id as check_gateway_id
from territoire_kernel.ids import tenant_id as check_tenant_id

from .sources.config import SourceConfig

DEFAULT_STATE_DIR = Path("/var/lib/territoire-agent")


@dataclass(frozen=True, kw_only=True)
class MqttConfig(Model):
    host: Annotated[str, Check(min_length=1)]
    port: Annotated[int, Check(ge=1, le=65535)] = 8883
    version: Literal["5", "3.1.1"] = "5"
    tls: bool = True
    ca_file: Path | None = None  # None: the system's trust store
    cert_file: Path | None = None  # client certificate, if the broker wants one
    key_file: Path | None = None
    username: str | None = None
    password: Secret | None = None
    password_file: Path | None = None  # preferred: keeps the secret out of the config
    client_id: Annotated[str, Check(min_length=1, max_length=64)] | None = None
    keepalive_s: Annotated[int, Check(ge=5, le=3600)] = 60
    # The broker keeps our subscription and queued commands this long while we are offline.
    session_expiry_s: Annotated[int, Check(ge=0, le=30 * 86_400)] = 86_400
    # Unacknowledged batches on the wire; far below paho's 65,535 message ids.
    max_inflight: Annotated[int, Check(ge=1, le=1000)] = 20
    reconnect_min_s: Annotated[float, Check(gt=0, le=60)] = 1.0
    reconnect_max_s: Annotated[float, Check(gt=0, le=3600)] = 120.0
    # Pace of a backlog replay (None: as fast as PUBACKs come back).
    max_batches_per_s: Annotated[float, Check(gt=0)] | None = None
    status_interval_s: Annotated[float, Check(ge=1, le=3600)] = 60.0

    def check(self) -> None:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if (self.password is not None or self.password_file is not None) and self.username is None:
            raise ValueError("a password needs a username")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")

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


@dataclass(frozen=True, kw_only=True)
class BufferConfig(Model):
    path: Path = DEFAULT_STATE_DIR / "buffer.sqlite3"
    # Stored batch bytes; when exceeded the OLDEST batches are dropped and counted.
    max_bytes: Annotated[int, Check(ge=64 * 1024)] = 256 * 1024 * 1024
    max_age_s: Annotated[float, Check(gt=0)] | None = 30 * 86_400.0
    batch_max_readings: Annotated[int, Check(ge=1, le=50_000)] = 500
    # One SQLite commit per interval: at most this much is lost on kill -9.
    flush_interval_s: Annotated[float, Check(ge=0.05, le=300)] = 5.0
    synchronous: Literal["normal", "full"] = "normal"
    # With synchronous=normal, power loss can also lose commits since the last checkpoint.
    checkpoint_interval_s: Annotated[float, Check(ge=1, le=3600)] = 60.0


@dataclass(frozen=True, kw_only=True)
class ClockConfig(Model):
    # kernel: the kernel's NTP status (adjtimex, what `timedatectl` shows as "synchronized");
    # marker: a file that the time daemon creates once synchronised; trusted: a board with an RTC.
    policy: Literal["kernel", "marker", "trusted"] = "kernel"
    marker_file: Path = Path("/run/systemd/timesync/synchronized")
    min_year: Annotated[int, Check(ge=2000, le=2099)] = 2024
    # Batches stamped before synchronisation wait this long for a correction, then go out flagged.
    hold_unsynced_s: Annotated[float, Check(ge=0)] = 6 * 3600.0
    jump_threshold_s: Annotated[float, Check(gt=0)] = 2.0


@dataclass(frozen=True, kw_only=True)
class CommandsConfig(Model):
    timeout_s: Annotated[float, Check(gt=0, le=300)] = 10.0
    max_duration_s: Annotated[float, Check(gt=0)] = 4 * 3600.0  # longest timed switch accepted
    keep_ids_days: Annotated[float, Check(gt=0)] = 30.0


@dataclass(frozen=True, kw_only=True)
class MetricsConfig(Model):
    # Local Prometheus endpoint; loopback by default so the gateway exposes nothing on 4G.
    host: str = "127.0.0.1"
    port: Annotated[int, Check(ge=1, le=65535)] = 9108


@dataclass(frozen=True, kw_only=True)
class AgentConfig(Model):
    tenant: Annotated[str, Check(call=check_tenant_id)]
    gateway_id: Annotated[str, Check(call=check_gateway_id)]
    mqtt: MqttConfig
    buffer: BufferConfig = BufferConfig()
    clock: ClockConfig = ClockConfig()
    commands: CommandsConfig = CommandsConfig()
    metrics: MetricsConfig | None = None
    sources: list[SourceConfig] = field(default_factory=list)
    profile_dirs: list[Path] = field(default_factory=list)

    def check(self) -> None:
        names = [source.name for source in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate source names: {dupes}")
        devices = [d.device_id for source in self.sources for d in source.devices]
        dupes = sorted({d for d in devices if devices.count(d) > 1})
        if dupes:
            raise ValueError(f"device ids must be unique across sources: {dupes}")

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"territoire-{self.tenant}-{self.gateway_id}"[:64]


def _one_message(exc: ValidationError, source: str) -> ConfigError:
    errors = exc.errors()
    first = errors[0]
    message = first.msg
    if first.type == "extra_forbidden":
        message = "unknown key (check the spelling; see `territoire agent schema`)"
    elif first.type == "missing":
        message = "required field is missing"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ConfigError(message, source=source, field=loc_text(first.loc) or None)


def parse_config(doc: object, source: str = "config") -> AgentConfig:
    if not isinstance(doc, dict):
        raise ConfigError("the config must be a YAML mapping (key: value)", source=source)
    try:
        return AgentConfig.validate(doc)
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
    doc = json_schema(AgentConfig)
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "territoire edge agent configuration"
    return json.dumps(doc, indent=2, sort_keys=True)
