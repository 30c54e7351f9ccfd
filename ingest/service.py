"""The ingest service: MQTT (QoS 1, persistent session) to the database.

Why paho-mqtt and not aiomqtt: a message may be acknowledged to the broker
only after its rows are committed. paho-mqtt 2 has ``manual_ack=True`` and
``Client.ack(mid, qos)``; aiomqtt 2.x acknowledges each message itself as soon
as it is received (see docs/ingest.md). The broker never sends more than
``Receive Maximum`` unacknowledged messages, which bounds the queue: a slow or
absent database stops the flow at the broker instead of losing messages here.
"""

from __future__ import annotations

import logging
import queue
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from territoire_kernel.errors import ConfigError
from territoire_kernel.topics import TopicKind, subscription

from .metrics import IngestMetrics
from .pipeline import Delivery, LnsHandler, Predecoded, predecode
from .writer import TRANSIENT_ERRORS, FlushOrder, FlushResult, Writer

log = logging.getLogger(__name__)

LNS_TOPICS = {"chirpstack": "application/+/device/+/event/up", "tts": "v3/+/devices/+/up"}


@dataclass
class IngestConfig:
    dsn: str
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    client_id: str = field(default_factory=lambda: f"territoire-ingest-{socket.gethostname()}")
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    share_group: str | None = None
    auto_register: bool = False
    lns: tuple[str, ...] = ()
    # Unacknowledged messages the broker may send us (MQTT 5 Receive Maximum).
    inflight: int = 1500
    # A third of the window per flush: two flushes commit while the third arrives and is decoded.
    # Fewer, larger flushes spread each flush's fixed round trips and fsync over more rows.
    flush_max_messages: int = 500
    flush_max_bytes: int = 8 * 1024 * 1024
    flush_max_wait_s: float = 0.05
    # Flushes in flight, each on its own connection: see IngestService._writer_loop.
    commit_connections: int = 2
    session_expiry_s: int = 7 * 86400
    keepalive_s: int = 30
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
    stop_grace_s: float = 10.0
    maintenance_interval_s: float = 3600.0

    def __post_init__(self) -> None:
        if not self.dsn:
            raise ConfigError("a PostgreSQL connection string is required", field="dsn")
        if not 0 < self.mqtt_port < 65536:
            raise ConfigError(f"{self.mqtt_port} is not a TCP port", field="mqtt_port")
        if self.commit_connections not in (1, 2):
            raise ConfigError("must be 1 or 2", field="commit_connections")
        if not 1 <= self.inflight <= 65535:
            raise ConfigError("must be 1..65535", field="inflight")
        for name in self.lns:
            if name not in LNS_TOPICS:
                raise ConfigError(f"unknown network server {name!r} (chirpstack or tts)", field="lns")
        if self.share_group is not None:
            try:
                subscription(TopicKind.UP, share_group=self.share_group)
            except ValueError as exc:
                raise ConfigError(str(exc), field="share_group") from None

    def topics(self) -> list[str]:
        kinds = (TopicKind.UP, TopicKind.STATUS, TopicKind.COMMAND_RESULT)
        found = [subscription(kind, share_group=self.share_group) for kind in kinds]
        prefix = f"$share/{self.share_group}/" if self.share_group else ""
        return found + [prefix + LNS_TOPICS[name] for name in self.lns]


class IngestService:
    """Run with :meth:`run` (blocking) and stop with :meth:`request_stop` from any thread."""

    def __init__(
        self,
        config: IngestConfig,
        metrics: IngestMetrics | None = None,
        *,
        lns_handler: LnsHandler | None = None,
        after_commit: Callable[[FlushResult], object] | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or IngestMetrics()
        self.writers = [
            Writer(config.dsn, auto_register=config.auto_register, lns_handler=lns_handler)
            for _ in range(config.commit_connections)
        ]
        self.writer = self.writers[0]  # also pings and runs maintenance while idle
        self.after_commit = after_commit
        self.queue: queue.Queue[Delivery] = queue.Queue(maxsize=config.inflight + 100)
        self.stop_requested = threading.Event()
        self.subscribed = threading.Event()
        self._disconnected = threading.Event()
        self._drained = threading.Event()
        self.db_ok = False
        self.committed_messages = 0
        self._generation = 0  # bumped at each disconnect: acks of an old connection are void
        self._pending_subs: set[int] = set()
        self._lock = threading.Lock()
        self._record_lock = threading.Lock()
        # Flushes in flight, oldest first: deliveries, commit, writer.
        self._pending: deque[tuple[list[Delivery], Future[bool], Writer]] = deque()
        self._gate = threading.Event()  # set once the newest flush may be followed (see _commit)
        self._gate.set()
        # Advisory lock keys of this process's flushes (FlushOrder): its own first key, a counter.
        self._ticket_space = secrets.randbits(31)
        self._flushes = 0
        self._last_ticket: tuple[int, int] | None = None
        self._gave_up = False  # a commit gave up (stop requested, database down): the next ones too
        self._give_up_at: float | None = None
        self.client = self._make_client()

    # ------------------------------------------------------------------ MQTT side

    def _make_client(self) -> mqtt.Client:
        c = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=c.client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        if c.mqtt_username is not None:
            client.username_pw_set(c.mqtt_username, c.mqtt_password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, rc: ReasonCode, props: object
    ) -> None:
        if rc.is_failure:
            log.warning("MQTT connection refused: %s", rc)
            return
        log.info(
            "connected to MQTT %s:%s (session present: %s)",
            self.config.mqtt_host,
            self.config.mqtt_port,
            flags.session_present,
        )
        result, mid = client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.config.topics()])
        if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._pending_subs.add(mid)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, codes: list[ReasonCode], props: object
    ) -> None:
        failed = [str(code) for code in codes if code.is_failure]
        if failed:
            log.error("MQTT subscription refused: %s", ", ".join(failed))
            return
        self._pending_subs.discard(mid)
        self.subscribed.set()
        self.metrics.mqtt_subscribed.set(1)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, rc: ReasonCode, props: object
    ) -> None:
        with self._lock:
            self._generation += 1
        self.subscribed.clear()
        self._disconnected.set()
        self.metrics.mqtt_subscribed.set(0)
        if not self.stop_requested.is_set():
            log.warning("MQTT connection lost (%s); paho reconnects, unacknowledged messages come back", rc)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        token = (self._generation, message.mid, message.qos)
        # Blocks only if the broker ignores Receive Maximum: TCP then pushes back.
        self.queue.put(Delivery(message.topic, bytes(message.payload), token))

    def _ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._lock:
            generation = self._generation
        for delivery in deliveries:
            token = delivery.token
            if not isinstance(token, tuple):
                continue
            gen, mid, qos = token
            # Acks for messages of a previous connection are void: the broker redelivers those.
            if qos > 0 and gen == generation:
                self.client.ack(mid, qos)

    # ------------------------------------------------------------------ lifecycle

    def ready(self) -> tuple[bool, str]:
        db = "database reachable" if self.db_ok else "database unreachable"
        mq = "MQTT subscribed" if self.subscribed.is_set() else "MQTT not subscribed"
        return self.db_ok and self.subscribed.is_set(), f"{db}; {mq}"

    def request_stop(self) -> None:
        self.stop_requested.set()

    def run(self) -> None:
        """Connect, then commit and acknowledge until a stop is requested."""
        self._connect_db_until_ready()
        c = self.config
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = c.session_expiry_s
        props.ReceiveMaximum = c.inflight
        self.client.connect_async(
            c.mqtt_host, c.mqtt_port, keepalive=c.keepalive_s, clean_start=False, properties=props
        )
        self.client.loop_start()
        try:
            self._writer_loop()
        finally:
            self._confirm_acks()
            self._disconnected.clear()
            if self.client.disconnect() == mqtt.MQTT_ERR_SUCCESS:
                # The network thread writes the queued PUBACKs, then DISCONNECT, then
                # calls on_disconnect; stopping it earlier would drop acknowledgements.
                self._disconnected.wait(5)
            self.client.loop_stop()
            for writer in self.writers:
                writer.close()
            log.info("ingest stopped after committing %d messages", self.committed_messages)

    def _confirm_acks(self) -> None:
        """Wait until the broker has processed our last PUBACKs.

        Closing a socket that still has unread incoming data (the broker keeps
        sending) makes the kernel send RST, and the broker may then discard our
        last PUBACKs unread. The broker answers packets in order, so the reply
        to an UNSUBSCRIBE of a filter we never used (a no-op) proves the acks
        before it were processed.
        """
        if not self.client.is_connected():
            return
        self._drained.clear()
        result, _ = self.client.unsubscribe(f"territoire/ingest-drain/{self.config.client_id}")
        if result == mqtt.MQTT_ERR_SUCCESS and not self._drained.wait(5):
            log.warning("the broker did not confirm the last acknowledgements; they may be redelivered")

    def _on_unsubscribe(
        self, client: mqtt.Client, userdata: object, mid: int, codes: list[ReasonCode], props: object
    ) -> None:
        self._drained.set()  # ingest unsubscribes only to confirm acknowledgements

    def _connect_db_until_ready(self) -> None:
        delay = self.config.retry_initial_s
        while not self.stop_requested.is_set():
            if self.writer.ping():
                self.db_ok = True
                self.metrics.db_up.set(1)
                return
            log.warning("database unreachable, retrying in %.1f s", delay)
            self.stop_requested.wait(delay)
            delay = min(delay * 2, self.config.retry_max_s)

    def _take(self, timeout: float, limit: int | None = None) -> list[Delivery]:
        c = self.config
        most = c.flush_max_messages if limit is None else min(limit, c.flush_max_messages)
        try:
            first = self.queue.get(timeout=timeout)
        except queue.Empty:
            return []
        taken, size = [first], len(first.payload)
        deadline = time.monotonic() + c.flush_max_wait_s
        while len(taken) < most and size < c.flush_max_bytes:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.stop_requested.is_set():
                    break
                try:
                    item = self.queue.get(timeout=min(remaining, 0.01))
                except queue.Empty:
                    continue
            taken.append(item)
            size += len(item.payload)
        return taken

    def _writer_loop(self) -> None:
        """Take flushes and commit them; decoding flush N+1 overlaps the commit of flush N.

        Commits run on helper threads (psycopg releases the GIL while it waits
        for the server), each flush on its own connection. With two
        connections, flush N+1 starts once flush N holds its ticket lock, so
        the two COPYs run at once on two server processes; N+1's rollup and
        gap steps wait for N's COMMIT (``FlushOrder``), so its gap step sees
        N's batch keys. Flushes are acknowledged only after their commit
        returned, in order.
        """
        with ThreadPoolExecutor(max_workers=len(self.writers), thread_name_prefix="ingest-commit") as pool:
            try:
                self._loop(pool)
            finally:
                while self._pending and self._settle():
                    pass
                self._pending.clear()  # after a commit gave up nothing more is acknowledged

    def _settle(self) -> bool:
        """Wait for the oldest commit in flight and acknowledge it; False if it gave up."""
        if not self._pending:
            return True
        deliveries, future, _ = self._pending[0]
        committed = future.result()
        self._pending.popleft()
        if not committed:
            self._pending.clear()  # stop requested while the database was down: nothing acknowledged
            return False
        self._ack(deliveries)
        return True

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        next_maintenance = time.monotonic()
        idle_since = time.monotonic()
        drain_left: int | None = None  # set at the stop request: what was received until then
        while True:
            if drain_left is None and self.stop_requested.is_set():
                drain_left = self.queue.qsize()
            if drain_left is not None and drain_left <= 0:
                return  # later messages stay unacknowledged: the broker redelivers them
            busy = bool(self._pending) and not self._pending[0][1].done()
            deliveries = self._take(0 if drain_left is not None or busy else 0.2, limit=drain_left)
            self.metrics.queue_depth.set(self.queue.qsize())
            if not deliveries:
                if not self._settle() or drain_left is not None:
                    return
                if self._pending:
                    continue
                now = time.monotonic()  # the writers are idle here: maintenance and pings may use one
                if now >= next_maintenance:
                    next_maintenance = now + self.config.maintenance_interval_s
                    self._maintenance()
                if now - idle_since > 5:
                    idle_since = now
                    self.db_ok = self.writer.ping()
                    self.metrics.db_up.set(1 if self.db_ok else 0)
                continue
            idle_since = time.monotonic()
            if drain_left is not None:
                drain_left -= len(deliveries)
            decoded = predecode(deliveries)  # while the previous flushes commit
            if len(self._pending) >= len(self.writers) and not self._settle():
                return
            busy_writers = [writer for _, _, writer in self._pending]
            writer = next(w for w in self.writers if all(w is not b for b in busy_writers))
            after, self._gate = self._gate, threading.Event()
            order = self._next_order(self._gate)
            future = pool.submit(self._commit, writer, deliveries, decoded, after, order)
            self._pending.append((deliveries, future, writer))

    def _next_order(self, gate: threading.Event) -> FlushOrder:
        self._flushes += 1
        ticket = (self._ticket_space, self._flushes % 2**31)
        order = FlushOrder(ticket=ticket, previous=self._last_ticket, on_ticket=gate.set)
        self._last_ticket = ticket
        return order

    def _commit(
        self,
        writer: Writer,
        deliveries: list[Delivery],
        decoded: list[Predecoded] | None,
        after: threading.Event,
        order: FlushOrder,
    ) -> bool:
        """Start once the previous flush holds its ticket (``after``); ``order.on_ticket`` opens the next.

        Only this wait is outside PostgreSQL, and it ends before this flush
        takes any lock: no wait cycle can form that PostgreSQL does not see
        (it breaks its own deadlocks with an error that is retried).
        """
        try:
            after.wait()
            return not self._gave_up and self._commit_retrying(writer, deliveries, decoded, order)
        finally:
            order.on_ticket()

    def _commit_retrying(
        self,
        writer: Writer,
        deliveries: list[Delivery],
        decoded: list[Predecoded] | None,
        order: FlushOrder,
    ) -> bool:
        """Commit, retrying with back-off while the database is unavailable."""
        delay = self.config.retry_initial_s
        while True:
            try:
                result = writer.write_isolating(deliveries, decoded, order=order)
            except TRANSIENT_ERRORS as exc:
                self.db_ok = False
                self.metrics.db_up.set(0)
                self.metrics.db_errors.inc()
                log.warning(
                    "database error, %d messages held unacknowledged, retry in %.1f s: %s",
                    len(deliveries),
                    delay,
                    str(exc).strip()[:200],
                )
                if self.stop_requested.is_set():
                    self._give_up_at = self._give_up_at or time.monotonic() + self.config.stop_grace_s
                    if time.monotonic() >= self._give_up_at:
                        self._gave_up = True
                        return False
                time.sleep(delay)
                delay = min(delay * 2, self.config.retry_max_s)
                continue
            self.db_ok = True
            self.metrics.db_up.set(1)
            with self._record_lock:  # two commit threads
                self.metrics.record(result)
                self.committed_messages += result.messages
                if self.after_commit is not None:
                    self.after_commit(result)
            return True

    def _maintenance(self) -> None:
        try:
            done = self.writer.maintenance()
            if any(done.values()):
                log.info("maintenance: %s", done)
        except TRANSIENT_ERRORS as exc:
            log.warning("maintenance postponed, database unavailable: %s", str(exc).strip()[:200])
