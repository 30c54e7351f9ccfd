"""Turn MQTT messages into the rows of one database transaction.

Nothing here writes: the writer commits a :class:`Work` atomically. Every
message ends up either as rows or as a dead letter with a reason, never lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from territoire_kernel.errors import TerritoireError, WireFormatError
from territoire_kernel.topics import TopicKind, parse_topic
from territoire_kernel.wire import Batch, Command, CommandResult, Encoding, Status, decode, encode

from .registry import DeviceInfo, Registry

# (time_us, device_id, metric, value, quality, tenant_id)
ReadingRow = tuple[int, str, str, float, int, str]
# (time_us, device_id, kind, attrs as JSON text, quality, tenant_id)
EventRow = tuple[int, str, str, str, int, str]


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
    readings: list[ReadingRow]
    events: list[EventRow]
    newest_us: int | None  # newest measurement time, for the lag metric
    # Items refused (unknown device...): kept only if the batch is new, so a
    # redelivered batch does not dead-letter them twice.
    dead: list[DeadLetter] = field(default_factory=list)


@dataclass
class Work:
    batches: list[BatchWork] = field(default_factory=list)
    lns: list[tuple[str, list[ReadingRow]]] = field(default_factory=list)  # (dedup key, rows)
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

    def classify(self, deliveries: Sequence[Delivery]) -> Work:
        work = Work(messages=len(deliveries))
        for delivery in deliveries:
            try:
                self._one(delivery, work)
            except TerritoireError as exc:
                work.dead.append(DeadLetter(delivery.topic, delivery.payload, str(exc)[:2000]))
        return work

    def _one(self, delivery: Delivery, work: Work) -> None:
        if not delivery.topic.startswith("territoire/") and self.lns_handler is not None:
            self.lns_handler(self, delivery, work)
            return
        where = parse_topic(delivery.topic)
        message = decode(delivery.payload)
        expected = {TopicKind.UP: Batch, TopicKind.STATUS: Status, TopicKind.COMMAND_RESULT: CommandResult}
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

        readings = [r for r in batch.readings if ok(r.device_id)]
        events = [e for e in batch.events if ok(e.device_id)]
        rows = [(r.time_us, r.device_id, r.metric, float(r.value), int(r.quality), tenant) for r in readings]
        event_rows = [
            (
                e.time_us,
                e.device_id,
                e.kind,
                json.dumps(e.attrs, separators=(",", ":")),
                int(e.quality),
                tenant,
            )
            for e in events
        ]
        newest = max((r[0] for r in rows), default=None)
        batch_work = BatchWork(batch.gateway_id, batch.boot_id, batch.seq, rows, event_rows, newest)
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
            payload = delivery.payload if not rows and not event_rows else encode(rejected, Encoding.JSON)
            batch_work.dead.append(
                DeadLetter(delivery.topic, payload, reason[:2000], tenant, batch.gateway_id)
            )
