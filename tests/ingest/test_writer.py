"""The transaction of one flush, against a real PostgreSQL (no MQTT here)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from ingest import writer as writer_module
from ingest.pipeline import Delivery
from ingest.writer import FlushOrder, Writer
from territoire_kernel.messages import CommandResult, CommandStatus, GatewayState, Status
from territoire_kernel.records import Event, Reading
from territoire_kernel.topics import TopicKind, topic
from territoire_kernel.wire import Batch, Encoding, encode

from .helpers import DEVICES, GATEWAY, T0, TENANT, UP, batch, count, payload, query, wait_for


@pytest.fixture(params=["direct", "staged"])
def writer(
    plain_db: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Writer]:
    # Big flushes COPY straight into readings (falling back to staging on a duplicate),
    # small ones go through staging: every test runs both ways.
    monkeypatch.setattr(writer_module, "DIRECT_COPY_FROM", 1 if request.param == "direct" else 10**9)
    with Writer(plain_db) as w:
        yield w


def up(b: Batch, encoding: Encoding = Encoding.CBOR) -> Delivery:
    return Delivery(UP, payload(b, encoding))


def test_redelivered_batches_are_stored_once(writer: Writer, plain_db: str) -> None:
    first = writer.write([up(batch(0)), up(batch(0)), up(batch(1), Encoding.JSON)])
    assert (first.batches, first.duplicate_batches, first.readings) == (2, 1, 20)
    again = writer.write([up(batch(1)), up(batch(0))])
    assert (again.batches, again.duplicate_batches, again.readings) == (0, 2, 0)
    # a new batch repeating rows already stored: the rows are de-duplicated
    overlap = Batch(GATEWAY, "boot2", 0, batch(0).readings + batch(2).readings)
    third = writer.write([up(overlap)])
    assert (third.readings, third.duplicate_readings) == (10, 10)
    assert count(plain_db, "readings") == 30
    assert count(plain_db, "received_batches") == 3
    assert query(plain_db, "SELECT count(DISTINCT (device_id, metric, time)) FROM readings") == [(30,)]


def test_events_are_stored_once_with_attrs(writer: Writer, plain_db: str) -> None:
    b = batch(0, n=3, events=2)
    writer.write([up(b), up(Batch(GATEWAY, "boot9", 0, (), b.events))])
    rows = query(plain_db, "SELECT kind, attrs, tenant_id FROM events ORDER BY time")
    assert rows == [("circuit_switched", {"on": True}, TENANT), ("circuit_switched", {"on": False}, TENANT)]


def test_malformed_messages_become_dead_letters_and_valid_ones_pass(writer: Writer, plain_db: str) -> None:
    storm = [
        Delivery(UP, b"not a message"),
        Delivery(UP, b'{"v": 1, "type": "batch"}'),
        Delivery("territoire/v2/x/y/up", payload(batch(5))),
        Delivery(topic(TENANT, "other-gw", TopicKind.UP), payload(batch(6))),
        Delivery(topic(TENANT, GATEWAY, TopicKind.STATUS), payload(batch(7))),
    ]
    result = writer.write([*storm, up(batch(0))])
    assert result.readings == 10
    reasons = [r[0] for r in query(plain_db, "SELECT reason FROM dead_letters ORDER BY id")]
    assert len(reasons) == 5
    assert "neither territoire JSON" in reasons[0]
    assert "missing field 'gateway'" in reasons[1]
    assert "unsupported topic version" in reasons[2]
    assert "payload names gateway 'gw-mairie' but the topic 'other-gw'" in reasons[3]
    assert "does not belong on 'status'" in reasons[4]
    assert query(plain_db, "SELECT payload FROM dead_letters ORDER BY id LIMIT 1") == [(b"not a message",)]


def test_an_lns_uplink_without_its_handler_is_a_dead_letter(writer: Writer, plain_db: str) -> None:
    # A writer made without --lns (e.g. a replay) cannot read a network server's topic.
    lns = Delivery("application/app-1/device/a84041000181c7b2/event/up", b"{}")
    result = writer.write([lns, up(batch(0))])
    assert (result.readings, len(result.dead_letters)) == (10, 1)
    assert query(plain_db, "SELECT topic FROM dead_letters") == [(lns.topic,)]


def test_unknown_device_rows_are_dead_lettered_and_known_ones_stored(writer: Writer, plain_db: str) -> None:
    mixed = Batch(GATEWAY, "boot1", 0, batch(0, n=2).readings + batch(0, n=2, device="ghost-1").readings)
    result = writer.write([up(mixed), up(mixed)])
    assert result.readings == 2
    rows = query(plain_db, "SELECT reason, tenant_id, gateway_id, payload FROM dead_letters")
    assert len(rows) == 1  # the redelivered copy adds nothing
    reason, tenant, gateway, stored = rows[0]
    assert (reason, tenant, gateway) == ("unknown device 'ghost-1'", TENANT, GATEWAY)
    assert b"ghost-1" in stored and b"armoire-1" not in stored


def test_device_of_another_tenant_and_unknown_gateway_are_refused(writer: Writer, plain_db: str) -> None:
    with psycopg.connect(plain_db) as conn:
        conn.execute("INSERT INTO devices (id, tenant_id) VALUES ('dijon-lamp', 'dijon')")
    writer.write(
        [
            up(batch(0, device="dijon-lamp")),
            Delivery(topic(TENANT, "gw-unknown", TopicKind.UP), payload(Batch("gw-unknown", "b", 0))),
            Delivery(topic("dijon", GATEWAY, TopicKind.UP), payload(batch(1))),
        ]
    )
    reasons = sorted(r[0] for r in query(plain_db, "SELECT reason FROM dead_letters"))
    assert reasons == [
        "device 'dijon-lamp' belongs to tenant 'dijon', not 'is-sur-tille'",
        "gateway 'gw-mairie' belongs to tenant 'is-sur-tille', not 'dijon'",
        "unknown gateway 'gw-unknown' (register it, or run ingest with --auto-register)",
    ]
    assert count(plain_db, "readings") == 0


def test_auto_register_creates_tenant_gateway_and_devices(plain_db: str) -> None:
    new_up = topic("velars", "gw-velars", TopicKind.UP)
    b = Batch("gw-velars", "b1", 0, (Reading("lamp-7", "power_w", 12.0, T0),))
    with Writer(plain_db, auto_register=True) as w:
        assert w.write([Delivery(new_up, payload(b)), Delivery(new_up, payload(b))]).readings == 1
    assert query(plain_db, "SELECT id, kind FROM tenants WHERE id = 'velars'") == [("velars", "autre")]
    assert query(plain_db, "SELECT tenant_id FROM gateways WHERE id = 'gw-velars'") == [("velars",)]
    assert query(
        plain_db, "SELECT tenant_id, gateway_id, model, profile FROM devices WHERE id = 'lamp-7'"
    ) == [("velars", "gw-velars", "", None)]


def test_sequence_gaps_are_recorded(writer: Writer, plain_db: str) -> None:
    writer.write([up(batch(0)), up(batch(1))])
    result = writer.write([up(batch(4)), up(batch(5)), up(batch(9))])
    assert sorted(result.gaps) == [(GATEWAY, "boot1", 2, 3), (GATEWAY, "boot1", 6, 8)]
    late = writer.write([up(batch(2))])  # a late batch filling part of a gap is no new gap
    assert late.gaps == []
    other_boot = writer.write([up(batch(7, boot="boot2"))])  # first batch seen of a boot: no reference
    assert other_boot.gaps == []
    assert query(plain_db, "SELECT boot_id, first_missing, last_missing FROM sequence_gaps ORDER BY 2") == [
        ("boot1", 3, 3),  # shrunk by the late batch 2
        ("boot1", 6, 8),
    ]


GAP_ROWS = "SELECT first_missing, last_missing FROM sequence_gaps ORDER BY 1"


def test_late_batches_shrink_split_and_remove_gaps(writer: Writer, plain_db: str) -> None:
    writer.write([up(batch(0)), up(batch(10)), up(batch(20))])
    assert query(plain_db, GAP_ROWS) == [(1, 9), (11, 19)]
    detected = query(plain_db, "SELECT detected_at FROM sequence_gaps ORDER BY first_missing")
    assert writer.write([up(batch(1)), up(batch(9))]).gaps == []  # both ends of the first gap: no new gap
    assert query(plain_db, GAP_ROWS) == [(2, 8), (11, 19)]
    assert query(plain_db, "SELECT detected_at FROM sequence_gaps WHERE first_missing = 2") == [detected[0]]
    assert writer.write([up(batch(5))]).gaps == []  # the middle: split in two
    assert query(plain_db, GAP_ROWS) == [(2, 4), (6, 8), (11, 19)]
    writer.write([up(batch(3)), up(batch(3)), up(batch(12)), up(batch(14))])  # several in one flush
    assert query(plain_db, GAP_ROWS) == [(2, 2), (4, 4), (6, 8), (11, 11), (13, 13), (15, 19)]
    writer.write([up(batch(s)) for s in (2, 4, 6, 7, 8, 11, 13, 15, 16, 17, 18, 19)])  # every one filled
    assert query(plain_db, GAP_ROWS) == []
    redelivered = writer.write([up(batch(5)), up(batch(25))])  # a redelivery fills nothing; 21-24 is new
    assert (redelivered.duplicate_batches, redelivered.gaps) == (1, [(GATEWAY, "boot1", 21, 24)])
    assert query(plain_db, GAP_ROWS) == [(21, 24)]


def test_status_and_command_results_are_written(writer: Writer, plain_db: str) -> None:
    status_topic = topic(TENANT, GATEWAY, TopicKind.STATUS)
    newer = Status(GATEWAY, GatewayState.ONLINE, "boot1", T0 + 60_000_000, "1.2.0", 5.0, 1, 40, 2.5, 3, True)
    older = Status(GATEWAY, GatewayState.OFFLINE, "boot0", T0, "1.1.0")
    result_topic = topic(TENANT, GATEWAY, TopicKind.COMMAND_RESULT)
    cmd = CommandResult("cmd-1", GATEWAY, CommandStatus.DONE, T0 + 1, "switched")
    writer.write([Delivery(status_topic, encode(newer)), Delivery(result_topic, encode(cmd, Encoding.JSON))])
    writer.write([Delivery(status_topic, encode(older)), Delivery(result_topic, encode(cmd))])
    gw = query(
        plain_db,
        "SELECT state, boot_id, version, buffer_readings, oldest_unsent_age_s, dropped_readings, "
        "clock_synced FROM gateways WHERE id = %s",
        (GATEWAY,),
    )
    assert gw == [("online", "boot1", "1.2.0", 40, 2.5, 3, True)]  # the late, older status did not win
    assert query(plain_db, "SELECT state, boot_id FROM gateway_status_log ORDER BY time") == [
        ("offline", "boot0"),
        ("online", "boot1"),
    ]
    assert query(plain_db, "SELECT command_id, gateway_id, status, detail FROM command_results") == [
        ("cmd-1", GATEWAY, "done", "switched")
    ]


ROLLUP_CHECK = """
SELECT count(*) FROM (
  SELECT date_bin('{width}', time, timestamptz '2000-01-01Z') AS bucket, device_id, metric, avg(value) AS avg,
         min(value) AS min, max(value) AS max, sum(value) AS sum, count(*) AS count,
         (array_agg(value ORDER BY time DESC))[1] AS last
  FROM readings GROUP BY 1, 2, 3) expected
FULL JOIN {table} r USING (bucket, device_id, metric)
WHERE r.count IS DISTINCT FROM expected.count OR abs(r.avg - expected.avg) > 1e-9 OR r.min <> expected.min
   OR r.max <> expected.max OR abs(r.sum - expected.sum) > 1e-6 OR r.last <> expected.last
"""


def test_rollups_match_a_recomputation_despite_late_and_duplicate_data(writer: Writer, plain_db: str) -> None:
    rng = random.Random(7)
    sent = []
    for seq in range(40):
        readings = tuple(
            Reading(
                rng.choice(DEVICES),
                rng.choice(["power_w", "energy_kwh"]),
                round(rng.uniform(-50, 500), 3),
                T0 + rng.randrange(0, 3 * 86_400) * 1_000_000,
            )
            for _ in range(rng.randint(1, 60))
        )
        sent.append(Batch(GATEWAY, "boot1", seq, readings))
    order = sent + rng.sample(sent, 10)  # redeliveries, in random order
    rng.shuffle(order)
    for start in range(0, len(order), 7):
        writer.write([up(b) for b in order[start : start + 7]])
    assert count(plain_db, "readings_hourly") > 50
    assert query(plain_db, ROLLUP_CHECK.format(width="1 hour", table="readings_hourly")) == [(0,)]
    assert query(plain_db, ROLLUP_CHECK.format(width="1 day", table="readings_daily")) == [(0,)]


def test_timescale_storage_takes_the_same_writes(timescale_db: str) -> None:
    with Writer(timescale_db) as w:
        w.write([up(batch(0)), up(batch(0)), up(batch(1))])
        assert w.storage == "timescale"
    assert count(timescale_db, "readings") == 20
    # the real-time continuous aggregates answer from the hypertable right away
    assert query(timescale_db, "SELECT sum(count) FROM readings_hourly") == [(20,)]
    assert query(timescale_db, "SELECT count, sum FROM readings_daily") == [(20, float(sum(range(20))))]


def test_a_message_the_database_rejects_is_isolated_as_a_dead_letter(writer: Writer, plain_db: str) -> None:
    # PostgreSQL's jsonb refuses the NUL character, which the wire format allows in attrs.
    poison = Batch(GATEWAY, "boot1", 9, (), (Event(DEVICES[0], "note", T0, {"text": "a\x00b"}),))
    result = writer.write_isolating([up(batch(0)), up(poison), up(batch(1))])
    assert (result.readings, result.batches) == (20, 2)
    assert count(plain_db, "readings") == 20
    (reason,) = query(plain_db, "SELECT reason FROM dead_letters")[0]
    assert reason.startswith("database rejected the message: UntranslatableCharacter")
    assert count(plain_db, "received_batches") == 2  # the poison batch can be replayed once fixed


def test_a_wait_cycle_between_overlapping_flushes_is_broken_then_retried(
    writer: Writer, plain_db: str
) -> None:
    # B follows A (FlushOrder) and repeats A's readings under another batch key. B's rows go in
    # first, then B waits for A's ticket while A's rows wait for B's uncommitted ones: a cycle
    # made only of PostgreSQL locks, so PostgreSQL breaks it and the loser retries, as ingest does.
    first = batch(0)
    repeated = Batch(GATEWAY, "boot2", 0, first.readings)
    failures: list[Exception] = []

    def write_retrying(w: Writer, b: Batch, order: FlushOrder) -> None:
        for _ in range(3):
            try:
                w.write([up(b)], order=order)
                return
            except psycopg.OperationalError as exc:  # what the service retries
                failures.append(exc)

    def follow() -> None:
        with Writer(plain_db) as other:
            write_retrying(other, repeated, FlushOrder((7, 2), (7, 1), lambda: None))

    follower = threading.Thread(target=follow)

    def start_follower_once() -> None:
        if follower.is_alive() or follower.ident is not None:
            return
        follower.start()
        waiting = (  # the follower's shared wait on ticket (7, 1): two-key advisory locks have objsubid 2
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = 7 AND objid = 1 AND objsubid = 2"
        )
        wait_for(lambda: query(plain_db, waiting) == [(1,)], what="the follower waiting for the ticket")

    began = time.monotonic()
    write_retrying(writer, first, FlushOrder((7, 1), None, start_follower_once))
    follower.join(30)
    assert not follower.is_alive()
    assert time.monotonic() - began < 20
    assert [type(exc) for exc in failures] == [psycopg.errors.DeadlockDetected]
    assert count(plain_db, "readings") == 10
    assert count(plain_db, "received_batches") == 2
