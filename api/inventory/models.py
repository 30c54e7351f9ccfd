"""Request and response bodies of the inventory (tenants, sites, gateways, devices, metrics).

Identifiers follow the kernel rules, because tenant and gateway ids end up in
MQTT topics and broker ACLs.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from api.inventory.geojson import validate_geometry
from territoire_kernel import ids

# Broker accounts of the platform itself; a gateway may not take one of these names.
RESERVED_GATEWAY_PREFIX = "territoire-"


def _gateway_id(value: str) -> str:
    ids.gateway_id(value)
    if value.startswith(RESERVED_GATEWAY_PREFIX):
        raise ValueError(
            f"gateway ids starting with {RESERVED_GATEWAY_PREFIX!r} are reserved for platform services"
        )
    return value


def _object(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > 64:
        raise ValueError("at most 64 attributes")
    return value


Slug = Annotated[str, AfterValidator(ids.tenant_id)]
GatewayId = Annotated[str, AfterValidator(_gateway_id)]
ThingId = Annotated[str, AfterValidator(ids.device_id)]
MetricName = Annotated[str, AfterValidator(ids.metric_name)]
Geometry = Annotated[dict[str, Any], AfterValidator(validate_geometry)]
Attrs = Annotated[dict[str, Any], AfterValidator(_object)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
TenantKind = Literal["commune", "intercommunalite", "syndicat", "autre"]
SiteKind = Literal["lighting_cabinet", "waste_point", "parking_zone", "other"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Patch(Strict):
    """Partial update: an absent field is kept and null clears a field, except where the column
    cannot be empty (those are listed in NOT_NULL and refused with a 422 rather than a database error)."""

    NOT_NULL: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _refuse_null_where_required(self) -> Self:
        cleared = [
            name for name in self.NOT_NULL if name in self.model_fields_set and getattr(self, name) is None
        ]
        if cleared:
            raise ValueError(f"{', '.join(cleared)} cannot be null (leave the field out to keep it)")
        return self


class TenantIn(Strict):
    id: Slug
    name: Name
    kind: TenantKind = "commune"
    parent_id: Slug | None = None


class TenantPatch(Patch):
    NOT_NULL = ("name", "kind")
    name: Name | None = None
    kind: TenantKind | None = None
    parent_id: Slug | None = None


class TenantOut(BaseModel):
    id: str
    name: str
    kind: str
    parent_id: str | None
    created_at: datetime


class SiteIn(Strict):
    id: ThingId
    name: Name
    kind: SiteKind = "other"
    location: Geometry | None = Field(
        default=None, description="GeoJSON geometry, WGS84 [longitude, latitude]"
    )
    attrs: Attrs = Field(default_factory=dict)


class SitePatch(Patch):
    NOT_NULL = ("name", "kind", "attrs")
    name: Name | None = None
    kind: SiteKind | None = None
    location: Geometry | None = None
    attrs: Attrs | None = None


class SiteOut(BaseModel):
    id: str
    tenant_id: str
    name: str
    kind: str
    location: dict[str, Any] | None
    attrs: dict[str, Any]
    created_at: datetime


class GatewayIn(Strict):
    id: GatewayId
    name: Annotated[str, Field(max_length=200)] = ""
    site_id: ThingId | None = None


class GatewayPatch(Patch):
    NOT_NULL = ("name",)
    name: Annotated[str, Field(max_length=200)] | None = None
    site_id: ThingId | None = None


class GatewayOut(BaseModel):
    """Registry fields plus the live state ingest keeps from the gateway's retained status."""

    id: str
    tenant_id: str
    site_id: str | None
    name: str
    created_at: datetime
    state: str
    boot_id: str | None
    version: str | None
    last_seen: datetime | None
    buffer_readings: int | None
    oldest_unsent_age_s: float | None
    dropped_readings: int | None
    clock_synced: bool | None


class MqttTopics(BaseModel):
    up: str
    status: str
    cmd: str
    cmd_result: str


class MqttCredentials(BaseModel):
    username: str
    password: str = Field(description="shown once; only its hash is kept (in the broker's password file)")
    topics: MqttTopics
    broker_files_written: bool = Field(description="false when the API has no broker_acl_dir configured")


class GatewayRegistered(GatewayOut):
    mqtt: MqttCredentials


class DeviceIn(Strict):
    id: ThingId
    site_id: ThingId | None = None
    gateway_id: GatewayId | None = None
    model: Annotated[str, Field(max_length=200)] = ""
    profile: Annotated[str, Field(max_length=200)] | None = None
    installed_on: date | None = None
    expected_interval_s: Annotated[int, Field(ge=1, le=31 * 86400)] | None = None
    attrs: Attrs = Field(default_factory=dict)


class DevicePatch(Patch):
    NOT_NULL = ("model", "attrs")
    site_id: ThingId | None = None
    gateway_id: GatewayId | None = None
    model: Annotated[str, Field(max_length=200)] | None = None
    profile: Annotated[str, Field(max_length=200)] | None = None
    installed_on: date | None = None
    expected_interval_s: Annotated[int, Field(ge=1, le=31 * 86400)] | None = None
    attrs: Attrs | None = None


class DeviceOut(BaseModel):
    id: str
    tenant_id: str
    site_id: str | None
    gateway_id: str | None
    model: str
    profile: str | None
    installed_on: date | None
    expected_interval_s: int | None
    attrs: dict[str, Any]
    created_at: datetime


class MetricIn(Strict):
    unit: Annotated[str, Field(max_length=32)] = ""
    description: Annotated[str, Field(max_length=1000)] = ""
    personal_data: bool = Field(
        default=False, description="true excludes the metric from open-data exports (GDPR: privacy by design)"
    )


class MetricOut(BaseModel):
    name: str
    unit: str
    description: str
    personal_data: bool


class RowError(BaseModel):
    row: int = Field(description="line number in the file; the header is row 1")
    field: str
    message: str


class ImportReport(BaseModel):
    created: list[str]
    errors: list[RowError]
