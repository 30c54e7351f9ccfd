"""Commands from the platform: decode, dedupe, check expiry, route, answer.

* At most once: each command id is recorded (in the buffer's SQLite file)
  before it runs; a redelivered id gets the recorded result again, never a
  second execution.
* Expired commands are refused (status `expired`). A gateway whose clock is
  not synchronised cannot tell, so it refuses every command (`rejected`).
* Fail safe timed switching: `switch` with `on: true` and `duration_s` when the
  device cannot time the switch itself: the switch-off is stored BEFORE the
  switch-on is sent, so a crash, a restart or a lost link still ends with the
  circuit off. While the agent runs, a switch-off is timed on the monotonic
  clock, so a wall-clock jump neither hastens nor delays it; the wall-clock due
  time is what a restart goes by. After a restart with an unsynchronised clock,
  pending switch-offs run at once (the agent cannot know how long it was down).
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

import cbor2

from territoire_kernel.errors import TerritoireError, WireFormatError
from territoire_kernel.messages import Command, CommandResult, CommandStatus
from territoire_kernel.records import AttrValue, Event, from_time_us
from territoire_kernel.wire import CBOR_MAGIC, decode, encode

from .clock import Clock
from .config import CommandsConfig
from .sources.base import CommandError, Sink, Source

log = logging.getLogger(__name__)

STARTED = "started"  # recorded before execution; a restart in between is reported, not repeated
RETRY_MAX_S = 60.0


@dataclass
class Timer:
    key: str
    command_id: str
    device: str
    action: str
    params: dict[str, AttrValue]
    due_us: int  # wall clock, persisted: what a restart goes by
    due_mono: float = 0.0  # monotonic, in memory: what this process goes by
    attempts: int = 0


class CommandStore:
    """Command ids seen and pending switch-offs, in the buffer's SQLite file."""

    def __init__(self, path: Path | str):
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # rare writes that must survive a power cut
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS commands (
                id TEXT PRIMARY KEY, received_us INTEGER NOT NULL, status TEXT NOT NULL, detail TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS timers (
                key TEXT PRIMARY KEY, command_id TEXT NOT NULL, device TEXT NOT NULL,
                action TEXT NOT NULL, params TEXT NOT NULL, due_us INTEGER NOT NULL);
            """
        )

    def seen(self, command_id: str) -> tuple[str, str] | None:
        row = self.db.execute("SELECT status, detail FROM commands WHERE id = ?", (command_id,)).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def record(self, command_id: str, status: str, detail: str, now_us: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO commands (id, received_us, status, detail) VALUES (?, ?, ?, ?)",
            (command_id, now_us, status, detail),
        )

    def prune(self, before_us: int) -> None:
        self.db.execute("DELETE FROM commands WHERE received_us < ?", (before_us,))

    def save_timer(self, timer: Timer) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO timers (key, command_id, device, action, params, due_us) VALUES (?, ?, ?, ?, ?, ?)",
            (timer.key, timer.command_id, timer.device, timer.action, json.dumps(timer.params), timer.due_us),
        )

    def delete_timer(self, key: str) -> None:
        self.db.execute("DELETE FROM timers WHERE key = ?", (key,))

    def timers(self) -> list[Timer]:
        rows = self.db.execute(
            "SELECT key, command_id, device, action, params, due_us FROM timers"
        ).fetchall()
        return [Timer(r[0], r[1], r[2], r[3], json.loads(r[4]), int(r[5])) for r in rows]

    def close(self) -> None:
        self.db.close()


def recover_id(payload: bytes) -> str | None:
    """The `id` of a command too malformed to decode, if one can be read."""
    try:
        doc = cbor2.loads(payload[3:]) if payload.startswith(CBOR_MAGIC) else json.loads(payload)
    except Exception:  # any garbage: there is simply no id to answer to
        return None
    value = doc.get("id") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


def _is_timed_switch(command: Command) -> bool:
    return command.action == "switch" and command.params.get("on") is True and "duration_s" in command.params


def _timer_key(device: str, params: Mapping[str, AttrValue]) -> str:
    """Same device and same target (e.g. circuit): a new relight replaces the pending switch-off."""
    target = {k: v for k, v in params.items() if k not in ("on", "duration_s")}
    return f"{device}|{json.dumps(target, sort_keys=True)}"


class CommandHandler:
    def __init__(
        self,
        gateway_id: str,
        sources: Sequence[Source],
        *,
        clock: Clock,
        store: CommandStore,
        publish: Callable[[bytes], None],
        sink: Sink,
        config: CommandsConfig,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.gateway_id = gateway_id
        self._monotonic = monotonic
        self.sources = list(sources)
        self.clock = clock
        self.store = store
        self.publish = publish
        self.sink = sink
        self.config = config
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._timers = {t.key: self._restored(t) for t in store.timers()}
        self._thread: threading.Thread | None = None
        self.handled = 0

    # Called from the MQTT thread: never blocks.
    def submit(self, payload: bytes) -> None:
        self._queue.put(payload)

    def start(self) -> None:
        if self._timers:
            log.info("%d pending timed switch-offs restored", len(self._timers))
        self._thread = threading.Thread(target=self._run, name="agent-commands", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(self.config.timeout_s + 2)

    def _restored(self, timer: Timer) -> Timer:
        """A switch-off from before a restart: due by the wall clock if it is trusted, else now."""
        left_s = (timer.due_us - self.clock.now_us()) / 1e6 if self.clock.synced else 0.0
        timer.due_mono = self._monotonic() + max(0.0, left_s)
        return timer

    @property
    def pending_timers(self) -> list[Timer]:
        return list(self._timers.values())

    def _run(self) -> None:
        while True:
            wait = self._seconds_to_next_timer()
            try:
                payload = self._queue.get(timeout=wait)
            except queue.Empty:
                payload = b""
            if payload is None:
                return
            try:
                if payload:
                    self._handle(payload)
                    self.handled += 1
                self._run_due_timers()
            except Exception:  # a bad command must not stop the next ones
                log.exception("command handling failed")

    # ------------------------------------------------------------------ commands

    def _answer(self, command_id: str, status: CommandStatus, detail: str, record: bool = True) -> None:
        now = self.clock.now_us()
        detail = detail[:1000]
        if record:
            self.store.record(command_id, status.value, detail, now)
        self.publish(encode(CommandResult(command_id, self.gateway_id, status, now, detail)))
        log.info("command %s: %s (%s)", command_id, status.value, detail)

    def _handle(self, payload: bytes) -> None:
        try:
            message = decode(payload)
        except WireFormatError as exc:
            command_id = recover_id(payload)
            log.warning("malformed command (id %s): %s", command_id, exc)
            if command_id is not None:
                try:
                    self._answer(
                        command_id, CommandStatus.REJECTED, f"malformed command: {exc}", record=False
                    )
                except TerritoireError:
                    log.warning("cannot even answer: the id %r is invalid", command_id)
            return
        if not isinstance(message, Command):
            log.warning("ignored a %s on the command topic", type(message).__name__)
            return
        seen = self.store.seen(message.command_id)
        if seen is not None:
            status, detail = seen
            if status == STARTED:
                status, detail = CommandStatus.FAILED.value, "interrupted by an agent restart; not repeated"
            log.info("command %s already handled; result sent again", message.command_id)
            self._answer(message.command_id, CommandStatus(status), detail, record=False)
            return
        self._execute(message)

    def _execute(self, command: Command) -> None:
        now = self.clock.now_us()
        if not self.clock.synced:
            self._answer(
                command.command_id,
                CommandStatus.REJECTED,
                "gateway clock not synchronised: cannot check expiry",
            )
            return
        if command.expired(now):
            late = (now - command.expires_us) / 1e6
            self._answer(command.command_id, CommandStatus.EXPIRED, f"received {late:.1f} s after it expired")
            return
        source = next((s for s in self.sources if s.owns(command.device_id)), None)
        if source is None:
            self._answer(command.command_id, CommandStatus.REJECTED, f"unknown device {command.device_id!r}")
            return
        params = dict(command.params)
        timer: Timer | None = None
        if _is_timed_switch(command) and not _supports_duration(source, command.device_id, command.action):
            duration = params.pop("duration_s")
            if isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0:
                self._answer(
                    command.command_id, CommandStatus.REJECTED, "duration_s must be a positive number"
                )
                return
            if duration > self.config.max_duration_s:
                detail = f"duration_s {duration} exceeds the limit {self.config.max_duration_s:g}"
                self._answer(command.command_id, CommandStatus.REJECTED, detail)
                return
            off = {**params, "on": False}
            timer = Timer(
                _timer_key(command.device_id, params),
                command.command_id,
                command.device_id,
                "switch",
                off,
                now + int(duration * 1e6),
                self._monotonic() + float(duration),
            )
        self.store.record(command.command_id, STARTED, "", now)
        if timer is not None:
            self.store.save_timer(timer)  # before the switch-on: fail safe
            self._timers[timer.key] = timer
        elif command.action == "switch" and params.get("on") is False:
            self._cancel_timer(_timer_key(command.device_id, params))
        try:
            detail = source.execute(command.device_id, command.action, params).result(self.config.timeout_s)
        except CommandError as exc:
            self._answer(command.command_id, CommandStatus.FAILED, str(exc))
            return
        except FutureTimeout:
            self._answer(
                command.command_id, CommandStatus.FAILED, f"no answer within {self.config.timeout_s:g} s"
            )
            return
        except TerritoireError as exc:
            self._answer(command.command_id, CommandStatus.FAILED, str(exc))
            return
        if timer is not None:
            detail += f"; off at {from_time_us(timer.due_us):%H:%M:%S}Z"
        self._answer(command.command_id, CommandStatus.DONE, detail)
        self.store.prune(now - int(self.config.keep_ids_days * 86_400e6))

    def _cancel_timer(self, key: str) -> None:
        if self._timers.pop(key, None) is not None:
            self.store.delete_timer(key)

    # ------------------------------------------------------------------ timed switch-offs

    def _seconds_to_next_timer(self) -> float:
        if not self._timers:
            return 1.0
        due = min(t.due_mono for t in self._timers.values())
        return max(0.0, min(1.0, due - self._monotonic()))

    def _run_due_timers(self) -> None:
        for timer in list(self._timers.values()):
            if timer.due_mono > self._monotonic():
                continue
            source = next((s for s in self.sources if s.owns(timer.device)), None)
            if source is None:
                log.error("pending switch-off for %s: no source owns it any more; dropped", timer.device)
                self._cancel_timer(timer.key)
                continue
            try:
                detail = source.execute(timer.device, timer.action, timer.params).result(
                    self.config.timeout_s
                )
            except (TerritoireError, FutureTimeout) as exc:
                timer.attempts += 1
                # In memory only: after a restart the switch-off is retried at once.
                timer.due_mono = self._monotonic() + min(RETRY_MAX_S, 2.0**timer.attempts)
                if timer.attempts == 1:
                    log.warning(
                        "timed switch-off of %s failed (%s); retrying until it works", timer.device, exc
                    )
                continue
            self._cancel_timer(timer.key)
            time_us, quality = self.clock.stamp()
            attrs: dict[str, AttrValue] = {k: v for k, v in timer.params.items()}
            attrs.update(reason="timer", command=timer.command_id)
            self.sink((), [Event(timer.device, "circuit_switched", time_us, attrs, quality)])
            log.info("timed switch-off of %s done: %s", timer.device, detail)


def _supports_duration(source: Source, device_id: str, action: str) -> bool:
    """Optional source capability: the device times the switch itself (e.g. a LoRaWAN relay downlink)."""
    check = getattr(source, "supports_duration", None)
    return bool(check(device_id, action)) if callable(check) else False
