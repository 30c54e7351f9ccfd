"""Turn MQTT messages into the rows of one database transaction.

Nothing here writes: the writer commits a :class:`Work` atomically. Every
message ends up either as rows or as a dead letter with a reason, never lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from territoire_kernel.errors import TerritoireError, WireFormatError
from territoire_kernel.records import Event, Reading
from territoire_kernel.topics import GatewayTopic, TopicKind, parse_topic
from territoire_kernel.wire import (
    Batch,
    BatchColumns,
    Command,
    CommandResult,
    Encoding,
    Message,
    Status,
    decode,
    decode_columns,
    encode,
)

from .registry import DeviceInfo, Registry

# (time_us, device_id, metric, value, quality, tenant_id)
ReadingRow = tuple[int, str, str, float, int, str]
# (time_us, device_id, kind, attrs as JSON text, quality, tenant_id)
EventRow = tuple[int, str, str, str, int, str]


@dataclass(slots=True)
class ReadingCols:
    """Readings column by column: what the COPY encoder and the rollups consume.

    Building one tuple per reading costs more than the COPY itself, so rows
    stay as parallel lists from the wire decoder to the database.
    """

    times: list[int] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    qualities: list[int] = field(default_factory=list)
    tenants: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.times)

    def extend(self, other: ReadingCols) -> None:
        self.times += other.times
        self.devices += other.devices
        self.metrics += other.metrics
        self.values += other.values
        self.qualities += other.qualities
        self.tenants += other.tenants

    def rows(self) -> list[ReadingRow]:
        return list(
            zip(
                self.times, self.devices, self.metrics, self.values, self.qualities, self.tenants, strict=True
            )
        )

    @classmethod
    def from_rows(cls, rows: Iterable[ReadingRow]) -> ReadingCols:
        cols = cls()
        for time_us, device, metric, value, quality, tenant in rows:
            cols.times.append(time_us)
            cols.devices.append(device)
            cols.metrics.append(metric)
            cols.values.append(value)
            cols.qualities.append(quality)
            cols.tenants.append(tenant)
        return cols

    @classmethod
    def from_readings(cls, readings: Iterable[Reading], tenant: str) -> ReadingCols:
        return cls.from_rows(
            (r.time_us, r.device_id, r.metric, float(r.value), int(r.quality), tenant) for r in readings
        )


def event_rows(events: Iterable[Event], tenant: str) -> list[EventRow]:
    return [
        (e.time_us, e.device_id, e.kind, json.dumps(e.attrs, separators=(",", ":")), int(e.quality), tenant)
        for e in events
    ]


# A delivery decoded ahead of its flush (topic and payload), or why it cannot be.
Predecoded = tuple[GatewayTopic, Message | BatchColumns] | TerritoireError


def predecode(deliveries: Sequence[Delivery]) -> list[Predecoded]:
    """Parse topics and payloads; pure (no database, no registry), so it can run in another thread."""
    out: list[Predecoded] = []
    for delivery in deliveries:
        try:  # an LNS uplink's topic is refused here; its handler, when there is one, takes it instead
            out.append((parse_topic(delivery.topic), decode_columns(delivery.payload)))
        except TerritoireError as exc:
            out.append(exc)
    return out


@dataclass(frozen=True, slots=True)
class Delivery:
    """One MQTT message as received; ``token`` lets the service acknowledge it."""

    topic: str
    payload: bytes
    token: object = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    payload: bytes
    reason: str
    tenant_id: str | None = None
    gateway_id: str | None = None


@dataclass
class BatchWork:
    gateway_id: str
    boot_id: str
    seq: int
    readings: ReadingCols
    events: list[EventRow]
    newest_us: int | None  # newest measurement time, for the lag metric
    # Items refused (unknown device...): kept only if the batch is new, so a
    # redelivered batch does not dead-letter them twice.
    dead: list[DeadLetter] = field(default_factory=list)


@dataclass
class Work:
    batches: list[BatchWork] = field(default_factory=list)
    # (dedup key, readings, events) of each LNS uplink
    lns: list[tuple[str, ReadingCols, list[EventRow]]] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    results: list[CommandResult] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    new_tenants: set[str] = field(default_factory=set)
    new_gateways: dict[str, str] = field(default_factory=dict)  # gateway -> tenant
    new_devices: dict[str, DeviceInfo] = field(default_factory=dict)
    messages: int = 0


# An optional handler for non-territoire topics (direct LNS subscription).
LnsHandler = Callable[["Classifier", Delivery, Work], None]


class Classifier:
    """Classify deliveries against the device registry; see the module doc."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        registry: Registry,
        *,
        auto_register: bool = False,
        lns_handler: LnsHandler | None = None,
    ) -> None:
        self.conn = conn
        self.registry = registry
        self.auto_register = auto_register
        self.lns_handler = lns_handler
        self._accepted: dict[str, set[str]] = {}  # tenant -> devices checked in this flush

    def classify(self, deliveries: Sequence[Delivery], decoded: Sequence[Predecoded] | None = None) -> Work:
        work = Work(messages=len(deliveries))
        for index, delivery in enumerate(deliveries):
            try:
                self._one(delivery, work, None if decoded is None else decoded[index])
            except TerritoireError as exc:
                work.dead.append(DeadLetter(delivery.topic, delivery.payload, str(exc)[:2000]))
        return work

    def _one(self, delivery: Delivery, work: Work, decoded: Predecoded | None) -> None:
        if not delivery.topic.startswith("territoire/") and self.lns_handler is not None:
            self.lns_handler(self, delivery, work)
            return
        if decoded is None:
            decoded = predecode([delivery])[0]
        if isinstance(decoded, TerritoireError):
            raise decoded
        where, message = decoded
        expected: dict[TopicKind, tuple[type, ...]] = {
            TopicKind.UP: (Batch, BatchColumns),
            TopicKind.STATUS: (Status,),
            TopicKind.COMMAND_RESULT: (CommandResult,),
        }
        kind = expected.get(where.kind)
        if kind is None or not isinstance(message, kind) or isinstance(message, Command):
            raise WireFormatError(
                f"a {type(message).__name__} message does not belong on {where.kind.value!r}"
            )
        if message.gateway_id != where.gateway:
            raise WireFormatError(
                f"payload names gateway {message.gateway_id!r} but the topic {where.gateway!r}"
            )

        def dead(reason: str) -> None:
            work.dead.append(
                DeadLetter(delivery.topic, delivery.payload, reason, where.tenant, where.gateway)
            )

        gateway_tenant = self._gateway_tenant(where.tenant, where.gateway, work)
        if gateway_tenant is None:
            dead(f"unknown gateway {where.gateway!r} (register it, or run ingest with --auto-register)")
            return
        if gateway_tenant != where.tenant:
            dead(f"gateway {where.gateway!r} belongs to tenant {gateway_tenant!r}, not {where.tenant!r}")
            return
        if isinstance(message, Status):
            work.statuses.append(message)
        elif isinstance(message, CommandResult):
            work.results.append(message)
        elif isinstance(message, BatchColumns):
            self._columns(delivery, where.tenant, message, work)
        elif isinstance(message, Batch):
            self._batch(delivery, where.tenant, message, work)

    def _gateway_tenant(self, tenant: str, gateway: str, work: Work) -> str | None:
        known = work.new_gateways.get(gateway) or self.registry.gateway(self.conn, gateway)
        if known is None and self.auto_register:
            if not self.registry.tenant(self.conn, tenant):
                work.new_tenants.add(tenant)
            work.new_gateways[gateway] = tenant
            return tenant
        return known

    def device(
        self, device_id: str, tenant: str | None, gateway: str | None, work: Work
    ) -> DeviceInfo | None:
        """The device's registry entry; auto-registered when allowed and a tenant is known."""
        info = work.new_devices.get(device_id) or self.registry.device(self.conn, device_id)
        if info is None and self.auto_register and tenant is not None:
            info = DeviceInfo(tenant, gateway, None)
            work.new_devices[device_id] = info
        return info

    def _columns(self, delivery: Delivery, tenant: str, cols: BatchColumns, work: Work) -> None:
        """The hot path: one registry check per distinct device, no per-reading objects."""
        accepted = self._accepted.setdefault(tenant, set())
        devices = set(cols.devices).union(e.device_id for e in cols.events) - accepted
        for device_id in devices:
            info = self.device(device_id, tenant, cols.gateway_id, work)
            if info is None or info.tenant_id != tenant:
                # Some items are refused: the object path splits the batch and says why.
                batch = decode(delivery.payload)
                assert isinstance(batch, Batch)
                self._batch(delivery, tenant, batch, work)
                return
        accepted |= devices
        n = len(cols.times_us)
        readings = ReadingCols(
            cols.times_us, cols.devices, cols.metrics, cols.values, cols.qualities, [tenant] * n
        )
        newest = max(cols.times_us) if n else None
        events = event_rows(cols.events, tenant)
        work.batches.append(BatchWork(cols.gateway_id, cols.boot_id, cols.seq, readings, events, newest))

    def _batch(self, delivery: Delivery, tenant: str, batch: Batch, work: Work) -> None:
        accepted: dict[str, bool] = {}
        problems: dict[str, str] = {}

        def ok(device_id: str) -> bool:
            if device_id not in accepted:
                info = self.device(device_id, tenant, batch.gateway_id, work)
                if info is None:
                    problems[device_id] = f"unknown device {device_id!r}"
                elif info.tenant_id != tenant:
                    problems[device_id] = (
                        f"device {device_id!r} belongs to tenant {info.tenant_id!r}, not {tenant!r}"
                    )
                accepted[device_id] = device_id not in problems
            return accepted[device_id]

        rows = ReadingCols.from_readings((r for r in batch.readings if ok(r.device_id)), tenant)
        events = event_rows((e for e in batch.events if ok(e.device_id)), tenant)
        newest = max(rows.times, default=None)
        batch_work = BatchWork(batch.gateway_id, batch.boot_id, batch.seq, rows, events, newest)
        work.batches.append(batch_work)
        if problems:
            # The rejected items keep the batch's identity so a replay after the
            # fix lands them (rows are idempotent on their unique keys).
            rejected = Batch(
                batch.gateway_id,
                batch.boot_id,
                batch.seq,
                tuple(r for r in batch.readings if not accepted[r.device_id]),
                tuple(e for e in batch.events if not accepted[e.device_id]),
                batch.sent_us,
            )
            reason = "; ".join(sorted(problems.values()))
            payload = delivery.payload if not rows and not events else encode(rejected, Encoding.JSON)
            batch_work.dead.append(
                DeadLetter(delivery.topic, payload, reason[:2000], tenant, batch.gateway_id)
            )
