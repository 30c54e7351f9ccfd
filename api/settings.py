"""API settings: one object handed to create_app (tests build it directly)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dsn: str
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_username: str | None = None
    mqtt_password: str | None = Field(default=None, repr=False)
    # Lifetime of tokens issued by the password login (API tokens made by an admin have their own).
    token_ttl_s: int = Field(default=12 * 3600, ge=60)
    command_rate_per_minute: int = Field(default=30, ge=1)
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "territoire@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_starttls: bool = False
    # Where the broker's password and ACL files live (written when a gateway is registered).
    broker_acl_dir: Path | None = None
    # Run after the broker files change so Mosquitto re-reads them (it does on SIGHUP), e.g. kill -HUP <pid>.
    broker_reload_command: tuple[str, ...] = ()
    default_licence: str = "Licence Ouverte / Etalab 2.0"
    default_licence_url: str = "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"
    max_points: int = Field(default=100_000, ge=1)
    pool_max_size: int = Field(default=10, ge=1)
    alert_interval_s: float | None = Field(default=60.0, gt=0)
