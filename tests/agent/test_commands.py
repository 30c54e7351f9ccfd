"""Commands end to end: cmd topic -> agent -> Modbus relay simulator -> cmd/result."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.agent import Agent
from simulators.devices.meters import LightingCircuit
from simulators.devices.modbus_server import ModbusTcpSimulator
from territoire.services import MosquittoServer
from territoire_kernel.ids import new_command_id
from territoire_kernel.messages import Batch, Command, CommandResult, CommandStatus
from territoire_kernel.wire import Encoding, encode

from ..agent_sources.fakes import FakeCatalog
from .conftest import Listener, agent_config

CMD = "territoire/v1/is-sur-tille/gw-test/cmd"
RESULTS = "territoire/v1/is-sur-tille/gw-test/cmd/result"


@pytest.fixture
def site() -> Iterator[tuple[LightingCircuit, ModbusTcpSimulator]]:
    circuit = LightingCircuit("iem3155", load_w=1800.0)
    server = ModbusTcpSimulator({1: circuit.meter, 2: circuit.relay})
    server.start()
    yield circuit, server
    server.stop()


def _agent(tmp_path: Path, broker: MosquittoServer, modbus_port: int) -> Agent:
    source = {
        "type": "modbus_tcp",
        "name": "armoire",
        "host": "127.0.0.1",
        "port": modbus_port,
        "devices": [
            {
                "device_id": "compteur-1",
                "slave_id": 1,
                "profile": "schneider-iem3155",
                "poll_interval_s": 0.5,
            },
            {"device_id": "armoire-1", "slave_id": 2, "profile": "modbus-relay-8", "poll_interval_s": 0.5},
        ],
    }
    return Agent(agent_config(tmp_path, broker.port, sources=[source]), FakeCatalog())


def _command(command_id: str | None = None, expires_in_s: float = 60, **params: Any) -> Command:
    now = time.time_ns() // 1000
    issued = now - 1_000_000
    return Command(
        command_id or new_command_id(),
        "armoire-1",
        "switch",
        issued,
        now + int(expires_in_s * 1e6) if expires_in_s > 0 else issued + 1,
        params or {"circuit": 1, "on": True},
    )


def _result(listener: Listener, command_id: str, nth: int = 1) -> CommandResult:
    listener.wait_for(
        lambda s: len([r for r in s.of_type(CommandResult) if r.command_id == command_id]) >= nth
    )
    return [r for r in listener.of_type(CommandResult) if r.command_id == command_id][nth - 1]


def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_switch_done_expired_duplicate_and_malformed(
    tmp_path: Path,
    mqtt_broker: MosquittoServer,
    listen: Callable[..., Listener],
    site: tuple[LightingCircuit, ModbusTcpSimulator],
) -> None:
    circuit, server = site
    listener = listen(RESULTS)
    agent = _agent(tmp_path, mqtt_broker, server.port)
    agent.start()
    try:
        _until(lambda: agent.publisher.connected)
        time.sleep(0.2)  # subscription acknowledged
        command = _command()
        listener.publish(CMD, encode(command))
        done = _result(listener, command.command_id)
        assert done.status is CommandStatus.DONE, done.detail
        assert circuit.relay.state(0) is True
        # Redelivered (same id): answered again, not executed again.
        circuit.relay.switch(0, False)
        listener.publish(CMD, encode(command, Encoding.JSON))
        again = _result(listener, command.command_id, nth=2)
        assert again.status is CommandStatus.DONE
        time.sleep(0.3)
        assert circuit.relay.state(0) is False
        late = _command(expires_in_s=-1)
        listener.publish(CMD, encode(late))
        assert _result(listener, late.command_id).status is CommandStatus.EXPIRED
        assert circuit.relay.state(0) is False
        stranger = Command(
            new_command_id(), "lampadaire-9", "switch", late.issued_us, late.expires_us + 10**8, {"on": True}
        )
        listener.publish(CMD, encode(stranger))
        assert _result(listener, stranger.command_id).status is CommandStatus.REJECTED
        listener.publish(CMD, b'{"v": 1, "type": "command", "id": "broken-1", "device": 3}')
        rejected = _result(listener, "broken-1")
        assert rejected.status is CommandStatus.REJECTED and "malformed" in rejected.detail
    finally:
        agent.stop()


def test_timed_switch_off_by_the_agent_survives_a_restart(
    tmp_path: Path,
    mqtt_broker: MosquittoServer,
    listen: Callable[..., Listener],
    site: tuple[LightingCircuit, ModbusTcpSimulator],
) -> None:
    circuit, server = site
    listener = listen("territoire/v1/is-sur-tille/gw-test/#")
    agent = _agent(tmp_path, mqtt_broker, server.port)
    agent.start()
    try:
        _until(lambda: agent.publisher.connected)
        time.sleep(0.2)
        short = _command(circuit=1, on=True, duration_s=0.5)
        listener.publish(CMD, encode(short))
        done = _result(listener, short.command_id)
        assert done.status is CommandStatus.DONE and "off at" in done.detail
        assert circuit.relay.state(0) is True
        _until(lambda: circuit.relay.state(0) is False, timeout=5)
        listener.wait_for(
            lambda s: any(
                e.kind == "circuit_switched" and e.attrs["reason"] == "timer"
                for b in s.of_type(Batch)
                for e in b.events
            )
        )
        # A longer relight, then the agent goes down before the switch-off is due.
        relight = _command(circuit=1, on=True, duration_s=1.5)
        listener.publish(CMD, encode(relight))
        assert _result(listener, relight.command_id).status is CommandStatus.DONE
    finally:
        agent.stop()
    assert circuit.relay.state(0) is True
    restarted = _agent(tmp_path, mqtt_broker, server.port)
    assert [t.command_id for t in restarted.commands.pending_timers] == [relight.command_id]
    restarted.start()
    try:
        _until(lambda: circuit.relay.state(0) is False, timeout=5)
        _until(lambda: not restarted.commands.pending_timers)
    finally:
        restarted.stop()
