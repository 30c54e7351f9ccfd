"""Agent -> real Mosquitto: batches in seq order, retained status, outages, clock sync."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from edge_agent.agent import Agent
from territoire.services import MosquittoServer
from territoire_kernel.messages import Batch, GatewayState, Status
from territoire_kernel.records import Quality, Reading

from .conftest import CounterSource, Listener, agent_config, agent_doc

TOPICS = "territoire/v1/is-sur-tille/gw-test/#"
ROOT = Path(__file__).parents[2]


def _counts(batches: list[Batch]) -> list[float]:
    return sorted(r.value for b in batches for r in b.readings if r.metric == "count")


def _agent_with_counter(tmp_path: Path, port: int, **kwargs: object) -> tuple[Agent, CounterSource]:
    config = agent_config(tmp_path, port, **kwargs)  # type: ignore[arg-type]
    holder: list[CounterSource] = []
    agent = Agent(config, sources=[])
    counter = CounterSource(agent.clock.stamp)
    holder.append(counter)
    agent.sources.append(counter)
    agent.commands.sources.append(counter)
    return agent, counter


def test_batches_status_and_clean_stop(
    tmp_path: Path, mqtt_broker: MosquittoServer, listen: Callable[..., Listener]
) -> None:
    listener = listen(TOPICS)
    agent, counter = _agent_with_counter(tmp_path, mqtt_broker.port)
    agent.start()
    try:
        listener.wait_for(lambda s: len(_counts(s.of_type(Batch))) >= 500)
        listener.wait_for(lambda s: any(st.state is GatewayState.ONLINE for st in s.of_type(Status)))
    finally:
        agent.stop()
    listener.wait_for(lambda s: s.of_type(Status)[-1].state is GatewayState.OFFLINE)
    batches = listener.of_type(Batch)
    assert [b.seq for b in batches] == list(range(len(batches)))  # in order, no gap, no duplicate
    assert _counts(batches) == [float(i) for i in range(counter.sent)]  # a clean stop loses nothing
    online = next(st for st in listener.of_type(Status) if st.state is GatewayState.ONLINE)
    assert online.boot_id == agent.boot_id and online.clock_synced and online.version
    status_retained = [r for t, m, r in listener.messages if isinstance(m, Status)]
    assert status_retained and not any(r for t, m, r in listener.messages if isinstance(m, Batch))


@pytest.fixture
def durable_broker() -> Iterator[MosquittoServer]:
    """A broker of our own whose persistence works: the shared one's workdir sits in a
    root-only pytest directory that the unprivileged mosquitto user cannot enter, so it
    cannot save sessions across a restart, and the listener would miss messages."""
    workdir = Path(tempfile.mkdtemp(prefix="territoire-agent-mqtt-"))
    workdir.chmod(0o755)
    broker = MosquittoServer(workdir=workdir / "broker")
    broker.start()
    yield broker
    broker.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def test_broker_restart_mid_stream_loses_nothing(tmp_path: Path, durable_broker: MosquittoServer) -> None:
    mqtt_broker = durable_broker
    listener = Listener(mqtt_broker.port, TOPICS, persistent=True)
    agent, counter = _agent_with_counter(tmp_path, mqtt_broker.port)
    agent.start()
    try:
        listener.wait_for(lambda s: len(s.of_type(Batch)) >= 5)
        mqtt_broker.stop()
        time.sleep(1.0)  # readings keep coming and pile up in the buffer
        assert agent.buffer.depth()[1] > 0 or agent.batcher.pending() > 0
        mqtt_broker.start()
        time.sleep(0.5)
        counter.paused.set()
        total = counter.sent
        listener.wait_for(lambda s: len(set(_counts(s.of_type(Batch)))) >= total, timeout=20)
    finally:
        agent.stop()
        listener.close()
    batches = listener.of_type(Batch)
    by_seq: dict[int, Batch] = {}
    for batch in batches:
        # A resend after a lost PUBACK carries the same (boot, seq) and the same readings.
        assert by_seq.setdefault(batch.seq, batch).readings == batch.readings
    assert sorted(by_seq) == list(range(len(by_seq)))
    counts = sorted(r.value for b in by_seq.values() for r in b.readings)
    assert counts == [float(i) for i in range(total)]  # exactly once after dedupe by seq
    assert agent.publisher.connects >= 2


def test_unsynced_readings_wait_and_arrive_corrected(
    tmp_path: Path, mqtt_broker: MosquittoServer, listen: Callable[..., Listener]
) -> None:
    listener = listen(TOPICS)
    synced = threading.Event()
    config = agent_config(tmp_path, mqtt_broker.port, clock={"policy": "kernel"})
    agent = Agent(config, sources=[], synced_probe=synced.is_set)
    counter = CounterSource(agent.clock.stamp)
    agent.sources.append(counter)
    agent.start()
    try:
        listener.wait_for(lambda s: any(not st.clock_synced for st in s.of_type(Status)))
        time.sleep(0.5)
        assert agent.buffer.depth()[0] > 0 and listener.of_type(Batch) == []  # held
        synced.set()
        listener.wait_for(lambda s: len(s.of_type(Batch)) >= 3)
        listener.wait_for(lambda s: any(b.readings[0].quality is Quality.GOOD for b in s.of_type(Batch)))
    finally:
        agent.stop()
    batches = listener.of_type(Batch)
    assert [b.seq for b in batches] == list(range(len(batches)))
    assert batches[0].readings[0].quality is Quality.CLOCK_CORRECTED
    assert not any(r.quality & Quality.CLOCK_UNSYNCED for b in batches for r in b.readings)


def _spawn(config_path: Path) -> subprocess.Popen[bytes]:
    code = "import sys; from pathlib import Path; from edge_agent.cli import run; sys.exit(run(Path(sys.argv[1])))"
    return subprocess.Popen(
        [sys.executable, "-c", code, str(config_path)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_run_cli_offline_status_on_stop_or_last_will(
    tmp_path: Path, mqtt_broker: MosquittoServer, listen: Callable[..., Listener], how: signal.Signals
) -> None:
    gateway = f"gw-run-{how.value}"
    doc = agent_doc(tmp_path, mqtt_broker.port, gateway_id=gateway)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc))
    listener = listen(f"territoire/v1/is-sur-tille/{gateway}/status")
    proc = _spawn(path)
    try:
        listener.wait_for(
            lambda s: any(st.state is GatewayState.ONLINE for st in s.of_type(Status)), timeout=15
        )
        os.kill(proc.pid, how)
        code = proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
    assert code == (0 if how is signal.SIGTERM else -signal.SIGKILL), stderr
    # SIGTERM: the agent says goodbye itself; SIGKILL: the broker publishes the last will.
    listener.wait_for(lambda s: s.of_type(Status)[-1].state is GatewayState.OFFLINE)


def test_backlog_replay_is_paced_even_below_one_batch_per_second(
    tmp_path: Path, mqtt_broker: MosquittoServer, listen: Callable[..., Listener]
) -> None:
    listener = listen(TOPICS)
    config = agent_config(tmp_path, mqtt_broker.port, mqtt={"max_batches_per_s": 0.8})
    agent = Agent(config, sources=[])
    for k in range(3):  # a backlog of three batches
        agent.batcher.sink([Reading("counter-1", "count", float(k), agent.clock.now_us())], [])
        agent.batcher.flush()
    started = time.monotonic()
    arrivals: list[float] = []
    agent.start()
    try:
        for n in (1, 2):
            listener.wait_for(lambda s, n=n: len(s.of_type(Batch)) >= n, timeout=10)
            arrivals.append(time.monotonic() - started)
    finally:
        agent.stop()
    # 0.8 batch/s: the first after 1.25 s, the second 1.25 s later (never sooner).
    assert arrivals[0] >= 1.0 and arrivals[1] - arrivals[0] >= 1.0, arrivals
    assert [b.seq for b in listener.of_type(Batch)][:2] == [0, 1]
