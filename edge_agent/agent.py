"""The agent: sources -> sink -> batcher -> SQLite buffer -> MQTT publisher, plus commands.

sources (own threads) --sink--> Batcher --one commit per flush--> Buffer
Buffer --seq order, bounded window--> Publisher --QoS 1--> broker
broker --cmd--> Publisher --> CommandHandler --> Source.execute --> cmd/result
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from territoire_kernel.ids import new_boot_id
from territoire_kernel.messages import GatewayState, Status

from .batcher import Batcher
from .buffer import Buffer
from .clock import Clock
from .commands import CommandHandler, CommandStore
from .config import AgentConfig
from .publisher import Publisher
from .sources.base import Source
from .sources.config import build_source
from .sources.profiles import CatalogLike

log = logging.getLogger(__name__)


def agent_version() -> str:
    """The installed distribution's version, as importlib.metadata finds it.

    importlib.metadata parses metadata with the email package: about 1 MB of resident
    memory for one string. The `Version:` header of the first territoire metadata on
    sys.path (the same search) is read directly; anything unusual falls back to it.
    """
    for entry in sys.path:
        folder = Path(entry or ".")
        try:
            found = [
                *folder.glob("territoire-*.dist-info/METADATA"),
                *folder.glob("territoire.egg-info/PKG-INFO"),
                *folder.glob("territoire-*.egg-info/PKG-INFO"),
            ]
        except OSError:
            continue
        if not found:
            continue
        try:  # the first match only, as importlib.metadata would pick
            with found[0].open(encoding="utf-8") as lines:
                for line in lines:
                    if line.startswith("Version:"):
                        return line.partition(":")[2].strip()
                    if not line.strip():
                        break  # end of the headers
        except (OSError, UnicodeDecodeError):
            pass
        break
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("territoire")
    except PackageNotFoundError:
        return "0+unknown"


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        catalog: CatalogLike | None = None,
        *,
        sources: Sequence[Source] | None = None,
        synced_probe: Callable[[], bool] | None = None,
        boot_id: str | None = None,
    ):
        """`sources` and `synced_probe` replace what the config would build (tests, embedding)."""
        self.config = config
        self.boot_id = boot_id or new_boot_id()
        self.version = agent_version()
        self.started_mono = time.monotonic()
        buf = config.buffer
        self.buffer = Buffer(
            buf.path,
            config.gateway_id,
            self.boot_id,
            max_bytes=buf.max_bytes,
            max_age_s=buf.max_age_s,
            synchronous=buf.synchronous,
        )
        self.clock = Clock(config.clock, self.buffer, synced_probe=synced_probe)
        self.batcher = Batcher(
            self.buffer,
            self.clock,
            batch_max_readings=buf.batch_max_readings,
            flush_interval_s=buf.flush_interval_s,
            hold_unsynced_s=config.clock.hold_unsynced_s,
            checkpoint_interval_s=buf.checkpoint_interval_s,
        )
        if sources is None:
            if config.sources and catalog is None:
                raise ValueError("a catalog of firmware profiles is needed to build the sources")
            sources = [build_source(c, stamper=self.clock.stamp, catalog=catalog) for c in config.sources]  # type: ignore[arg-type]
        self.sources = list(sources)
        self.store = CommandStore(buf.path)
        self.publisher = Publisher(config, self.buffer, self.status, self._on_command)
        self.commands = CommandHandler(
            config.gateway_id,
            self.sources,
            clock=self.clock,
            store=self.store,
            publish=self.publisher.publish_result,
            sink=self.batcher.sink,
            config=config.commands,
        )
        self._running = False

    def _on_command(self, payload: bytes) -> None:
        self.commands.submit(payload)

    def start(self) -> None:
        log.info(
            "agent %s starting: gateway %s/%s, boot %s, %d sources, %d batches waiting",
            self.version,
            self.config.tenant,
            self.config.gateway_id,
            self.boot_id,
            len(self.sources),
            self.buffer.depth()[0],
        )
        self.batcher.start()
        self.commands.start()
        self.publisher.start()
        for source in self.sources:
            source.start(self.batcher.sink)
        self._running = True

    def stop(self) -> None:
        """Clean stop: sources first, then everything pending is stored, then offline status."""
        if not self._running:
            return
        self._running = False
        for source in self.sources:
            try:
                source.stop()
            except Exception:  # one stuck source must not keep the others' data from being stored
                log.exception("source %s did not stop cleanly", source.name)
        self.batcher.stop()
        self.commands.stop()
        self.publisher.stop()
        self.store.close()
        self.buffer.close()
        log.info("agent stopped")

    def healthy(self) -> bool:
        """For the systemd watchdog: the threads that move data are alive."""
        return self._running and self.batcher.alive and self.publisher.alive

    def status(self, state: GatewayState = GatewayState.ONLINE) -> Status:
        now = self.clock.now_us()
        batches, readings = self.buffer.depth()
        oldest = self.buffer.oldest_created_us() if batches else None
        return Status(
            gateway_id=self.config.gateway_id,
            state=state,
            boot_id=self.boot_id,
            time_us=now,
            version=self.version,
            uptime_s=round(time.monotonic() - self.started_mono, 3),
            buffer_batches=batches,
            buffer_readings=readings,
            oldest_unsent_age_s=max(0.0, (now - oldest) / 1e6) if oldest is not None else 0.0,
            dropped_readings=self.buffer.dropped_readings,
            clock_synced=self.clock.synced,
        )

    def health(self) -> dict[str, object]:
        batches, readings = self.buffer.depth()
        return {
            "connected": self.publisher.connected,
            "buffer_batches": batches,
            "buffer_readings": readings,
            "buffer_bytes": self.buffer.stored_bytes,
            "dropped_readings": self.buffer.dropped_readings,
            "pending_readings": self.batcher.pending(),
            "clock": self.clock.status(),
            "timers": len(self.commands.pending_timers),
            "sources": [s.health() for s in self.sources],
        }
