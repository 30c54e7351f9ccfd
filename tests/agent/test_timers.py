"""Timed switch-offs run on the monotonic clock: wall-clock jumps and dead devices don't derail them."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path

from edge_agent.clock import Clock
from edge_agent.commands import CommandHandler, CommandStore, Timer
from edge_agent.config import ClockConfig, CommandsConfig
from edge_agent.sources.base import CommandError, Sink, Source
from territoire_kernel.ids import new_command_id
from territoire_kernel.messages import Command, CommandResult, CommandStatus
from territoire_kernel.records import AttrValue, Event
from territoire_kernel.wire import decode, encode

from .test_clock import TRUE_NOW_US, FakeTime


class Relay(Source):
    """Records every switch; fails while `broken`."""

    def __init__(self) -> None:
        self.name = "relay"
        self.calls: list[dict[str, AttrValue]] = []
        self.broken = False

    def start(self, sink: Sink) -> None:
        pass

    def stop(self, timeout: float = 5.0) -> None:
        pass

    def owns(self, device_id: str) -> bool:
        return device_id == "armoire-1"

    def execute(self, device_id: str, action: str, params: Mapping[str, AttrValue]) -> Future[str]:
        future: Future[str] = Future()
        self.calls.append(dict(params))
        if self.broken:
            future.set_exception(CommandError("no answer from slave 2"))
        else:
            future.set_result(f"circuit {params.get('circuit')} {'on' if params.get('on') else 'off'}")
        return future

    def health(self) -> dict[str, object]:
        return {}


class Mono:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _handler(
    tmp_path: Path, t: FakeTime, mono: Mono, relay: Relay, results: list[CommandResult]
) -> tuple[CommandHandler, list[Event]]:
    clock = Clock(
        ClockConfig(policy="kernel"), synced_probe=lambda: t.synced, wall_ns=t.wall_ns, mono_ns=t.mono_ns
    )
    events: list[Event] = []

    def sink(_readings: object, new_events: object) -> None:
        events.extend(new_events)  # type: ignore[call-overload]

    def publish(payload: bytes) -> None:
        message = decode(payload)
        assert isinstance(message, CommandResult)
        results.append(message)

    handler = CommandHandler(
        "gw-1",
        [relay],
        clock=clock,
        store=CommandStore(tmp_path / "b.db"),
        publish=publish,
        sink=sink,
        config=CommandsConfig(timeout_s=1),
        monotonic=mono,
    )
    return handler, events


def _wait(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_wall_clock_jump_neither_hastens_nor_delays_the_switch_off(tmp_path: Path) -> None:
    t, mono, relay = FakeTime(), Mono(), Relay()
    results: list[CommandResult] = []
    t.ntp_sync()
    handler, events = _handler(tmp_path, t, mono, relay, results)
    handler.start()
    try:
        command = Command(
            new_command_id(), "armoire-1", "switch", TRUE_NOW_US - 10**6, TRUE_NOW_US + 60 * 10**6,
            {"circuit": 1, "on": True, "duration_s": 300},
        )  # fmt: skip
        handler.submit(encode(command))
        _wait(lambda: len(results) == 1)
        assert results[0].status is CommandStatus.DONE and relay.calls == [{"circuit": 1, "on": True}]
        t.wall_us += 3600 * 10**6  # NTP steps the clock an hour forward
        mono.now += 299
        time.sleep(0.3)
        assert len(relay.calls) == 1  # not switched off early
        mono.now += 2
        _wait(lambda: len(relay.calls) == 2)
        assert relay.calls[1] == {"circuit": 1, "on": False}
        _wait(lambda: len(events) == 1)
        assert events[0].kind == "circuit_switched" and events[0].attrs["reason"] == "timer"
        assert handler.pending_timers == []
    finally:
        handler.stop()
        handler.store.close()


def test_failing_switch_off_backs_off_even_with_an_unsynced_clock(tmp_path: Path) -> None:
    t, mono, relay = FakeTime(), Mono(), Relay()
    results: list[CommandResult] = []
    store = CommandStore(tmp_path / "b.db")
    store.save_timer(Timer("armoire-1|{}", "cmd-1", "armoire-1", "switch", {"circuit": 1, "on": False}, 1))
    store.close()
    relay.broken = True
    handler, _events = _handler(tmp_path, t, mono, relay, results)
    handler.start()  # unsynced after a restart: the switch-off is due at once
    try:
        _wait(lambda: len(relay.calls) == 1)
        time.sleep(0.3)
        assert len(relay.calls) == 1  # waits 2 s (monotonic) before retrying, no busy loop
        mono.now += 2.1
        _wait(lambda: len(relay.calls) == 2)
        relay.broken = False
        mono.now += 4.1
        _wait(lambda: handler.pending_timers == [])
        assert relay.calls[-1] == {"circuit": 1, "on": False} and len(relay.calls) == 3
    finally:
        handler.stop()
        handler.store.close()
