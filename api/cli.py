"""`territoire api ...`: serve the API and manage accounts."""

from __future__ import annotations

import argparse
import getpass
import os
import shlex
import signal
import sys
from types import FrameType
from typing import Any

import psycopg

from api.settings import Settings
from api.users import UserError, create_user, issue_token
from territoire_kernel.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="territoire api")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = sub.add_parser("run", help="serve the API and the dashboard")
    run.add_argument(
        "--dsn", default=os.environ.get("TERRITOIRE_DSN"), help="PostgreSQL DSN (or TERRITOIRE_DSN)"
    )
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--mqtt-host", default="127.0.0.1")
    run.add_argument("--mqtt-port", type=int, default=1883)
    run.add_argument("--mqtt-username", default=None, help="the API's broker account (territoire-api)")
    run.add_argument(
        "--mqtt-password-env", default=None, help="name of the environment variable holding its password"
    )
    run.add_argument(
        "--broker-acl-dir", default=None, help="where to write the broker's passwd and acl files"
    )
    run.add_argument(
        "--broker-reload-command",
        default=None,
        help="run after those files change so the broker rereads them, e.g. 'kill -HUP 1' (split like a shell)",
    )
    user = sub.add_parser("user", help="create or update an account")
    user.add_argument("subject")
    user.add_argument("--dsn", default=os.environ.get("TERRITOIRE_DSN"))
    user.add_argument("--role", required=True, choices=["admin", "technician", "viewer", "analyst"])
    user.add_argument("--tenant", action="append", default=[], help="tenant id (repeat for analysts)")
    user.add_argument("--password", action="store_true", help="ask for a password (dashboard login)")
    token = sub.add_parser("token", help="issue an API token for an account")
    token.add_argument("subject")
    token.add_argument("--dsn", default=os.environ.get("TERRITOIRE_DSN"))
    token.add_argument("--label", default="cli")
    return parser


def _dsn(args: argparse.Namespace) -> str:
    if not args.dsn:
        raise ConfigError("a database is required: pass --dsn or set TERRITOIRE_DSN", field="dsn")
    return str(args.dsn)


def main(args: argparse.Namespace) -> int:
    options = _parser().parse_args(getattr(args, "api_args", None))
    if options.action == "run":
        return _run(options)
    try:
        with psycopg.connect(_dsn(options)) as conn:
            if options.action == "user":
                password = getpass.getpass("mot de passe : ") if options.password else None
                account = create_user(conn, options.subject, options.role, options.tenant, password)
                print(f"account {account.subject} ({account.role})")
            else:
                print(issue_token(conn, options.subject, label=options.label))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _run(options: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app

    values: dict[str, Any] = {
        "dsn": _dsn(options),
        "mqtt_host": options.mqtt_host,
        "mqtt_port": options.mqtt_port,
    }
    if options.mqtt_username:
        values["mqtt_username"] = options.mqtt_username
    if options.mqtt_password_env:
        password = os.environ.get(options.mqtt_password_env)
        if password is None:
            raise ConfigError(
                f"environment variable {options.mqtt_password_env} is not set", field="mqtt-password-env"
            )
        values["mqtt_password"] = password
    if options.broker_acl_dir:
        values["broker_acl_dir"] = options.broker_acl_dir
    if options.broker_reload_command:
        values["broker_reload_command"] = tuple(shlex.split(options.broker_reload_command))
    app = create_app(Settings(**values))
    stopped_by: list[int] = []

    def note_stop(sig: int, _frame: FrameType | None) -> None:
        stopped_by.append(sig)

    # uvicorn handles SIGTERM/SIGINT (stops accepting, finishes requests, runs the lifespan exit),
    # then raises the signal again for the handler found before it: with the default one the
    # process would die of it (status -15, a KeyboardInterrupt traceback on Ctrl+C) after a clean stop.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, note_stop)
    uvicorn.run(app, host=options.host, port=options.port, log_level="info", access_log=False)
    if stopped_by:
        print(f"stopped by {signal.Signals(stopped_by[0]).name}", file=sys.stderr)
    return 0
