"""Send queued alert notifications by webhook (HTTP POST JSON) and e-mail (SMTP), with retries.

Each pass takes the due notifications (FOR UPDATE SKIP LOCKED, so two API
processes never send the same one), tries each once, and on failure schedules
the next attempt with exponential back-off until `max_attempts`.
"""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from api.alerting.engine import ensure_schema

SUBJECT_PREFIX = {"opened": "Alerte", "resolved": "Alerte résolue"}


@dataclass(frozen=True)
class DeliveryConfig:
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "territoire@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    timeout_s: float = 10.0
    max_attempts: int = 5
    backoff_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: Any) -> DeliveryConfig:
        """From the API Settings; fields it lacks keep their defaults."""
        names = ("smtp_host", "smtp_port", "smtp_from", "smtp_username", "smtp_password", "smtp_starttls")
        found = {n: getattr(settings, n) for n in names if getattr(settings, n, None) is not None}
        return cls(**found)


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    retrying: int
    failed: int


def payload(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": row["event"],
        "alert": {
            "id": row["alert_id"], "rule_id": row["rule_id"], "tenant": row["tenant_id"], "kind": row["kind"],
            "subject": row["subject"], "state": row["state"], "message": row["message"], "details": row["details"],
            "opened_at": row["opened_at"].isoformat(),
            "resolved_at": row["resolved_at"].isoformat() if row["resolved_at"] else None,
        },
    }  # fmt: skip


def email_message(row: dict[str, Any], sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row["target"]
    message["Subject"] = f"[territoire] {SUBJECT_PREFIX[row['event']]} : {row['message']}"
    lines = [
        f"{SUBJECT_PREFIX[row['event']]} n° {row['alert_id']} ({row['kind']}) — collectivité {row['tenant_id']}",
        row["message"],
        f"Objet : {row['subject']}",
        f"Ouverte le : {row['opened_at'].isoformat()}",
    ]
    if row["resolved_at"]:
        lines.append(f"Résolue le : {row['resolved_at'].isoformat()}")
    # Quoted-printable keeps the French text 7-bit clean for any relay.
    message.set_content("\n".join(lines) + "\n", cte="quoted-printable")
    return message


def _send_mail(config: DeliveryConfig, message: EmailMessage) -> None:
    if not config.smtp_host:
        raise RuntimeError("no SMTP server configured (smtp_host)")
    with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.timeout_s) as smtp:
        if config.smtp_starttls:
            smtp.starttls()
        if config.smtp_username and config.smtp_password:
            smtp.login(config.smtp_username, config.smtp_password)
        smtp.send_message(message)


async def _send(row: dict[str, Any], config: DeliveryConfig, client: httpx.AsyncClient) -> None:
    if row["channel"] == "webhook":
        response = await client.post(row["target"], json=payload(row))
        response.raise_for_status()
    else:
        await asyncio.to_thread(_send_mail, config, email_message(row, config.smtp_from))


async def deliver_pending(
    conn: psycopg.AsyncConnection[Any], config: DeliveryConfig, now: datetime, limit: int = 100
) -> DeliveryReport:
    """One delivery pass over the notifications due at `now`. Commits nothing itself."""
    await ensure_schema(conn)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT n.id, n.event, n.channel, n.target, n.attempts, a.id AS alert_id, a.rule_id, a.tenant_id,"
            " a.kind, a.subject, a.state, a.message, a.details, a.opened_at, a.resolved_at"
            " FROM alert_notifications n JOIN alerts a ON a.id = n.alert_id"
            " WHERE n.status = 'pending' AND n.next_attempt_at <= %s ORDER BY n.id LIMIT %s"
            " FOR UPDATE OF n SKIP LOCKED",
            [now, limit],
        )
        rows = await cur.fetchall()
    sent = retrying = failed = 0
    async with httpx.AsyncClient(timeout=config.timeout_s, follow_redirects=False) as client:
        for row in rows:
            attempts = row["attempts"] + 1
            try:
                await _send(row, config, client)
            except (httpx.HTTPError, OSError, smtplib.SMTPException, RuntimeError) as exc:
                final = attempts >= config.max_attempts
                delay = timedelta(seconds=config.backoff_s * 2 ** (attempts - 1))
                await conn.execute(
                    "UPDATE alert_notifications SET attempts = %s, status = %s, next_attempt_at = %s,"
                    " last_error = %s WHERE id = %s",
                    [
                        attempts,
                        "failed" if final else "pending",
                        now + delay,
                        f"{type(exc).__name__}: {exc}"[:500],
                        row["id"],
                    ],
                )
                failed, retrying = failed + final, retrying + (not final)
                continue
            await conn.execute(
                "UPDATE alert_notifications SET attempts = %s, status = 'sent', sent_at = %s, last_error = NULL"
                " WHERE id = %s",
                [attempts, now, row["id"]],
            )
            sent += 1
    return DeliveryReport(sent, retrying, failed)
