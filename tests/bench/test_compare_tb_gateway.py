"""Our side of bench/compare_tb_gateway.py: the measuring helpers, against our agent only (no network)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bench.tb_gateway.contenders import (
    AGENT_TOPIC,
    EdgeAgent,
    Simulator,
    TbGateway,
    profile_points,
    tb_timeseries,
    tb_version,
)
from bench.tb_gateway.measure import (
    ByteCountingProxy,
    ReadingCounter,
    cpu_seconds,
    match_polls,
    peak_rss_mb,
    process_tree,
)
from territoire.services import MosquittoServer

ROOT = Path(__file__).resolve().parents[2]
TB_VENV = ROOT / "bench" / "results" / "tb-venv"


def test_cpu_and_peak_memory_of_a_process_tree() -> None:
    # A parent that allocates 64 MB and spins, with a child that spins too: both are counted.
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time\\nt=time.process_time()\\n"
        "while time.process_time()-t<0.4: pass\\ntime.sleep(30)'])\n"
        "block = bytearray(64 * 1024 * 1024)\n"
        "t = time.process_time()\n"
        "while time.process_time() - t < 0.4: pass\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(0.6)  # the child's own spin
        assert len(process_tree(proc.pid)) == 2
        assert 0.7 <= cpu_seconds(proc.pid) < 5
        assert peak_rss_mb(proc.pid) >= 64
    finally:
        for pid in reversed(process_tree(proc.pid)):
            subprocess.run(["kill", str(pid)], check=False)
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def test_proxy_counts_mqtt_bytes_both_ways(mqtt_broker: MosquittoServer) -> None:
    proxy = ByteCountingProxy(mqtt_broker.port)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="proxy-test")
    try:
        client.connect("127.0.0.1", proxy.port)
        client.loop_start()
        client.publish("bench/proxy", b"x" * 1000, qos=1).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
        deadline = time.monotonic() + 5
        while proxy.counts()[1] < 4 + 4 and time.monotonic() < deadline:  # CONNACK + PUBACK
            time.sleep(0.05)
        up, down = proxy.counts()
        # CONNECT (~24) + PUBLISH (1000 + topic + 2-byte id + 3-byte header) + DISCONNECT (2)
        assert 1000 + 11 + 5 + 24 <= up <= 1100
        assert down == 8
        assert proxy.connections == 1
    finally:
        proxy.close()


def test_polls_are_matched_to_readings_with_loss_counted() -> None:
    polls = {"m1": [10.0, 11.0, 12.0, 13.0], "m2": [10.1, 11.1]}
    received = {"m1": Counter({10_020: 14, 11_010: 14, 13_300: 10}), "m2": Counter({10_100: 14, 11_100: 14})}
    loss = match_polls(polls, received, per_poll=14, tolerance_s=0.45)
    # m1: the 12.0 poll is missing, the 13.0 poll arrived with 4 metrics short.
    assert (loss.polls, loss.expected, loss.received, loss.lost) == (6, 84, 66, 18)


def test_register_map_translated_for_thingsboard() -> None:
    points = profile_points()
    entries = {e["tag"]: e for e in tb_timeseries(points)}
    assert len(entries) == len(points) == 14
    assert entries["power_w"] == {
        "tag": "power_w",
        "type": "32float",
        "functionCode": 3,
        "objectsCount": 2,
        "address": 3059,
        "multiplier": 1000.0,
    }
    assert entries["energy_kwh"]["type"] == "64int" and entries["energy_kwh"]["divider"] == 1000


def test_thingsboard_payload_decoded() -> None:
    payload = b'{"meter-1": [{"ts": 1700000000000, "values": {"power_w": 600.0, "voltage_v": 231.0}}]}'
    assert sorted(TbGateway.decode("v1/gateway/telemetry", payload)) == [
        ("meter-1", "power_w", 1700000000000),
        ("meter-1", "voltage_v", 1700000000000),
    ]


def test_agent_measured_through_the_harness(mqtt_broker: MosquittoServer) -> None:
    """A few seconds of our agent: every poll the simulator answered reaches the broker, bytes counted."""
    per_poll = len(profile_points())
    sim = Simulator(3)
    proxy = ByteCountingProxy(mqtt_broker.port)
    counter = ReadingCounter(mqtt_broker.port, [AGENT_TOPIC], EdgeAgent.decode, f"test-{time.time_ns()}")
    agent = EdgeAgent(Path(tempfile.mkdtemp(prefix="bench-agent-")), 3, 0.5, sim.port)
    try:
        pid = agent.start(proxy.port)
        t0 = time.time()
        time.sleep(3)
        t1 = time.time()
        polls = sim.polls(t0 + 0.5, t1 - 0.5)

        def received() -> dict[str, Counter[int]]:
            return counter.times_by_device(int(t0 * 1000), int(t1 * 1000))

        # Batches are flushed every 5 s (the agent's default): wait for the one holding the window.
        deadline = time.monotonic() + 15
        while match_polls(polls, received(), per_poll, 0.25).lost and time.monotonic() < deadline:
            assert agent.alive(), agent.log_tail()
            time.sleep(0.2)
        loss = match_polls(polls, received(), per_poll, 0.25)
        assert loss.polls >= 3 * 3
        assert loss.lost == 0, loss
        arrivals, distinct = counter.snapshot()
        assert arrivals == distinct > 0
        up, _down = proxy.counts()
        assert 5 < up / distinct < 60  # batched CBOR: about 14 bytes per reading here
        assert 0 < cpu_seconds(pid) < 30
        assert 20 < peak_rss_mb(pid) < 300
    finally:
        agent.stop()
        counter.close()
        proxy.close()
        sim.close()


@pytest.mark.skipif(
    tb_version(TB_VENV) is None, reason="thingsboard-gateway not installed in bench/results/tb-venv"
)
def test_thingsboard_gateway_config_written(tmp_path: Path) -> None:
    TbGateway.venv = TB_VENV
    gateway = TbGateway(tmp_path, 2, 1.0, 5020)
    args, env = gateway.command(1883)
    assert args[0] == str(TB_VENV / "bin" / "python")
    config = Path(env["TB_GW_CONFIG_DIR"])
    assert '"port": 1883' in (config / "tb_gateway.json").read_text()
    assert (config / "modbus.json").read_text().count('"unitId"') == 2
