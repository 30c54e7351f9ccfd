"""An agent killed with SIGKILL while publishing loses nothing once restarted.

The agent polls a real Modbus TCP meter; after each SIGKILL it restarts on the
same buffer. Every batch it numbered must reach the broker, in order within a
boot; a batch sent twice (PUBACK lost with the process) must be identical, so
ingest's (gateway, boot, seq) key removes the copy.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import yaml

from simulators.devices.meters import LightingCircuit
from simulators.devices.modbus_server import ModbusTcpSimulator
from territoire.services import MosquittoServer
from territoire_kernel.messages import Batch

from .conftest import Listener, agent_doc
from .test_publish import _spawn

KILLS = 3


def test_sigkill_while_publishing_loses_no_batch(
    tmp_path: Path, mqtt_broker: MosquittoServer, listen: Callable[..., Listener]
) -> None:
    circuit = LightingCircuit("iem3155", load_w=1500.0)
    circuit.relay.switch(0, True)
    meter = ModbusTcpSimulator({1: circuit.meter})
    meter.start()
    source = {
        "type": "modbus_tcp", "name": "armoire", "host": "127.0.0.1", "port": meter.port,
        "devices": [{"device_id": "armoire-1", "slave_id": 1, "profile": "schneider-iem3155", "poll_interval_s": 0.05}],
    }  # fmt: skip
    doc = agent_doc(tmp_path, mqtt_broker.port, gateway_id="gw-kill", sources=[source])
    doc["buffer"]["batch_max_readings"] = 8
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc))
    listener = listen("territoire/v1/is-sur-tille/gw-kill/up")
    try:
        for round_ in range(KILLS + 1):
            proc = _spawn(path)
            seen = len(listener.of_type(Batch))
            known_boots = {b.boot_id for b in listener.of_type(Batch)}
            # Kill only once this start has published under its own boot id, not just resent the
            # backlog of the previous one: otherwise a slow start leaves nothing numbered to check.
            listener.wait_for(
                lambda s, seen=seen, known=known_boots: (
                    len(s.of_type(Batch)) >= seen + 5
                    and any(b.boot_id not in known for b in s.of_type(Batch))
                ),
                timeout=30,
            )
            os.kill(proc.pid, signal.SIGTERM if round_ == KILLS else signal.SIGKILL)
            proc.wait(15)
            assert proc.stderr is not None
            proc.stderr.close()
    finally:
        meter.stop()
    batches = listener.of_type(Batch)
    by_key: dict[tuple[str, int], Batch] = {}
    for batch in batches:
        earlier = by_key.setdefault((batch.boot_id, batch.seq), batch)
        assert earlier.readings == batch.readings, "a resent batch must be identical"
    with sqlite3.connect(doc["buffer"]["path"]) as db:
        unsent = {(boot, seq) for boot, seq in db.execute("SELECT boot, seq FROM batches")}
    # What the buffer still holds after the clean stop is simply not sent yet; everything else arrived.
    # Within each boot, sequence numbers have no gap: nothing numbered was lost.
    boots: dict[str, list[int]] = {}
    for boot, seq in by_key:
        boots.setdefault(boot, []).append(seq)
    for boot, sent in boots.items():
        # A batch can be both delivered and still buffered: stopped before its PUBACK was handled,
        # it is resent under the same (boot, seq) and ingest stores it once.
        seqs = sorted(set(sent) | {seq for b, seq in unsent if b == boot})
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    # A start killed before it flushed anything of its own leaves no boot id of its own.
    assert len(boots) >= 2, "restarts number their batches under a new boot id"
    assert {min(seqs) for seqs in boots.values()} == {0}, "no boot lost its first batches"
    assert sum(len(b.readings) for b in by_key.values()) > 0
