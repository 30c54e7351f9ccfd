"""`territoire ingest ...` and `territoire db ...`.

The top-level CLI hands over the words after the subcommand (a REMAINDER list)
so this module owns its options and help.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from types import FrameType
from typing import Any, NoReturn

from territoire_kernel.errors import ConfigError

from . import deadletters
from .migrate import RetentionSettings, migrate, status


class _Parser(argparse.ArgumentParser):
    """Usage mistakes become ConfigError: one readable line naming the option."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see '{self.prog} --help')")


def _dsn_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn",
        default=os.environ.get("TERRITOIRE_DSN"),
        help="PostgreSQL connection string (default: $TERRITOIRE_DSN)",
    )


def _require_dsn(args: argparse.Namespace) -> str:
    if not args.dsn:
        raise ConfigError("give --dsn postgresql://user@host:port/db or set TERRITOIRE_DSN", field="dsn")
    return str(args.dsn)


def _retention_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timescale", choices=["auto", "on", "off"], default="auto")
    parser.add_argument(
        "--compress-after", default="7 days", help="TimescaleDB: compress chunks older than this"
    )
    parser.add_argument(
        "--readings-retention", default=None, help="drop readings older than this (default: keep)"
    )
    parser.add_argument("--dead-letters-retention", default="90 days")


def _retention(args: argparse.Namespace) -> RetentionSettings:
    return RetentionSettings(args.compress_after, args.readings_retention, args.dead_letters_retention)


# --------------------------------------------------------------------------- territoire db


def db_main(args: argparse.Namespace) -> int:
    parser = _Parser(prog="territoire db", description="Database schema of the data tables.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    mig = sub.add_parser("migrate", help="apply pending migrations (idempotent)")
    _dsn_option(mig)
    _retention_options(mig)
    st = sub.add_parser("status", help="storage mode, applied and pending migrations")
    _dsn_option(st)
    opts = parser.parse_args(list(args.db_args))
    dsn = _require_dsn(opts)
    if opts.action == "migrate":
        report = migrate(dsn, opts.timescale, _retention(opts))
        applied = ", ".join(report.applied) or "nothing (already up to date)"
        print(f"storage: {report.mode}; applied: {applied}")
        return 0
    mode, applied_rows, pending = status(dsn)
    print(f"storage: {mode or 'not migrated'}")
    for version, name, when in applied_rows:
        print(f"  {version:04d} {name:<24} applied {when}")
    print(f"pending: {', '.join(pending) or 'none'}")
    return 0


# --------------------------------------------------------------------------- territoire ingest


def main(args: argparse.Namespace) -> int:
    parser = _Parser(prog="territoire ingest", description="MQTT to PostgreSQL/TimescaleDB ingestion.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = sub.add_parser("run", help="run the ingest service until SIGTERM")
    _dsn_option(run)
    run.add_argument("--mqtt-host", default="127.0.0.1")
    run.add_argument("--mqtt-port", type=int, default=1883)
    run.add_argument(
        "--client-id", default=None, help="MQTT client id; unique per worker (persistent session)"
    )
    run.add_argument("--mqtt-username", default=None)
    run.add_argument(
        "--mqtt-password-env", default=None, help="name of the environment variable holding the password"
    )
    run.add_argument("--share-group", default=None, help="MQTT shared subscription group for several workers")
    run.add_argument("--auto-register", action="store_true", help="create unknown gateways and devices")
    run.add_argument(
        "--lns", nargs="+", choices=["chirpstack", "tts"], default=[], help="also read LNS uplinks"
    )
    run.add_argument("--metrics-port", type=int, default=None, help="serve /metrics, /healthz, /readyz")
    run.add_argument("--metrics-host", default="127.0.0.1")
    run.add_argument(
        "--inflight", type=int, default=1500, help="unacknowledged messages allowed (Receive Maximum)"
    )
    run.add_argument("--log-level", default="INFO")
    run.add_argument(
        "--influx-url", default=None, help="also mirror readings to InfluxDB 2.x/3.x at this URL"
    )
    run.add_argument("--influx-org", default="")
    run.add_argument("--influx-bucket", default="territoire")
    run.add_argument(
        "--influx-token-env", default="INFLUX_TOKEN", help="environment variable holding the token"
    )
    _retention_options(run)
    dl = sub.add_parser("dead-letters", help="list or replay dead letters")
    dl_sub = dl.add_subparsers(dest="dl_action", required=True, metavar="ACTION")
    ls = dl_sub.add_parser("list", help="dead letters not yet replayed")
    _dsn_option(ls)
    ls.add_argument("--all", action="store_true", help="include replayed ones")
    ls.add_argument("--tenant", default=None)
    ls.add_argument("--limit", type=int, default=100)
    rp = dl_sub.add_parser("replay", help="run dead letters through the pipeline again")
    _dsn_option(rp)
    rp.add_argument("ids", nargs="*", type=int, help="dead letter ids (default: all not yet replayed)")
    rp.add_argument("--auto-register", action="store_true")
    opts = parser.parse_args(list(args.ingest_args))
    dsn = _require_dsn(opts)
    if opts.action == "run":
        return _run(opts, dsn)
    if opts.dl_action == "list":
        rows = deadletters.list_dead_letters(
            dsn, limit=opts.limit, include_replayed=opts.all, tenant=opts.tenant
        )
        for row in rows:
            state = "replayed" if row.replayed_at else ("replay failed" if row.replay_error else "pending")
            print(f"{row.id}\t{row.received_at:%Y-%m-%d %H:%M:%S}\t{state}\t{row.topic}\t{row.reason}")
        print(f"{len(rows)} dead letter(s)")
        return 0
    outcomes = deadletters.replay(
        dsn, opts.ids or None, auto_register=opts.auto_register, lns_handler=_lns_handler()
    )
    for outcome in outcomes:
        print(f"{outcome.id}\t{'ok' if outcome.ok else 'still failing'}\t{outcome.detail}")
    return 0 if all(o.ok for o in outcomes) else 1


def _lns_handler() -> Any:
    from .lns import firmware_profile_decoder, make_lns_handler

    return make_lns_handler(firmware_profile_decoder())


def _run(opts: argparse.Namespace, dsn: str) -> int:
    from .metrics import HealthServer, IngestMetrics
    from .service import IngestConfig, IngestService

    logging.basicConfig(
        level=opts.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    password = None
    if opts.mqtt_password_env:
        password = os.environ.get(opts.mqtt_password_env)
        if password is None:
            raise ConfigError(
                f"environment variable {opts.mqtt_password_env} is not set", field="mqtt-password-env"
            )
    extra: dict[str, Any] = {"client_id": opts.client_id} if opts.client_id else {}
    config = IngestConfig(
        dsn=dsn,
        mqtt_host=opts.mqtt_host,
        mqtt_port=opts.mqtt_port,
        mqtt_username=opts.mqtt_username,
        mqtt_password=password,
        share_group=opts.share_group,
        auto_register=opts.auto_register,
        lns=tuple(opts.lns),
        inflight=opts.inflight,
        **extra,
    )
    report = migrate(dsn, opts.timescale, _retention(opts))
    logging.getLogger(__name__).info(
        "schema ready (%s storage, applied: %s)", report.mode, report.applied or "none"
    )
    metrics = IngestMetrics()
    sink = None
    if opts.influx_url:
        from .influx import InfluxSink

        sink = InfluxSink(
            opts.influx_url, os.environ.get(opts.influx_token_env, ""), opts.influx_org, opts.influx_bucket
        )
    service = IngestService(
        config,
        metrics,
        lns_handler=_lns_handler() if config.lns else None,
        after_commit=(lambda result: sink.write(result.stored_readings)) if sink is not None else None,
    )
    health = None
    if opts.metrics_port is not None:
        health = HealthServer(metrics, service.ready, opts.metrics_port, opts.metrics_host)
        health.start()

    def stop(signum: int, frame: FrameType | None) -> None:
        service.request_stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    try:
        service.run()
    finally:
        if health is not None:
            health.stop()
        if sink is not None:
            sink.close()
    return 0
