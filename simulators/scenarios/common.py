"""Shared pieces of the scenarios: inventory rows, interval sums and batching."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from territoire_kernel.messages import MAX_ITEMS_PER_BATCH, Batch
from territoire_kernel.records import Event, Reading

FloatArray = npt.NDArray[np.float64]


@dataclass
class Inventory:
    """Rows the platform must know before ingest accepts a gateway's data (SCHEMA.md)."""

    tenant: str
    tenant_name: str
    tenant_kind: str = "commune"
    sites: list[dict[str, Any]] = field(default_factory=list)
    gateways: list[dict[str, Any]] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Chunk:
    """Readings and events of one gateway over one stretch of simulated time."""

    gateway: str
    end_us: int  # simulated time up to which the chunk is complete
    readings: tuple[Reading, ...]
    events: tuple[Event, ...] = ()


def boot_id_for(seed: int, gateway: str) -> str:
    """A deterministic boot id, so a re-run of the same scenario is stored once (idempotent)."""
    return hashlib.sha256(f"{seed}:{gateway}".encode()).hexdigest()[:32]


def batches(chunks: Iterable[Chunk], seed: int, max_items: int = 5_000) -> Iterator[tuple[str, Batch]]:
    """Number chunks into kernel batches per gateway, as an edge agent does."""
    seqs: dict[str, int] = {}
    for chunk in chunks:
        readings, events = list(chunk.readings), list(chunk.events)
        limit = min(max_items, MAX_ITEMS_PER_BATCH)
        while readings or events:
            take_r = readings[:limit]
            take_e = events[: limit - len(take_r)]
            readings, events = readings[len(take_r) :], events[len(take_e) :]
            seq = seqs.get(chunk.gateway, 0)
            seqs[chunk.gateway] = seq + 1
            yield (
                chunk.gateway,
                Batch(chunk.gateway, boot_id_for(seed, chunk.gateway), seq, tuple(take_r), tuple(take_e)),
            )


def merge_intervals(pairs: list[tuple[float, float]]) -> tuple[FloatArray, FloatArray]:
    """Sorted disjoint [start, end) intervals from possibly overlapping pairs."""
    if not pairs:
        return np.zeros(0), np.zeros(0)
    pairs = sorted(p for p in pairs if p[1] > p[0])
    starts, ends = [pairs[0][0]], [pairs[0][1]]
    for a, b in pairs[1:]:
        if a <= ends[-1]:
            ends[-1] = max(ends[-1], b)
        else:
            starts.append(a)
            ends.append(b)
    return np.array(starts), np.array(ends)


def seconds_within(starts: FloatArray, ends: FloatArray, times: FloatArray) -> FloatArray:
    """Seconds of the intervals before each time (a running total, for energy counters)."""
    if not len(starts):
        return np.zeros(len(times))
    full = np.concatenate(([0.0], np.cumsum(ends - starts)))
    idx = np.searchsorted(starts, times, side="right")
    last = np.maximum(idx - 1, 0)
    partial = np.clip(times - starts[last], 0.0, ends[last] - starts[last])
    return np.where(idx > 0, full[last] + partial, 0.0)


def inside(starts: FloatArray, ends: FloatArray, times: FloatArray) -> npt.NDArray[np.bool_]:
    if not len(starts):
        return np.zeros(len(times), dtype=bool)
    idx = np.searchsorted(starts, times, side="right") - 1
    return (idx >= 0) & (times < ends[np.maximum(idx, 0)])
