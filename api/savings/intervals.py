"""Sets of disjoint time intervals (seconds since the epoch) with vectorised algebra.

Lighting hours are interval arithmetic: dark periods minus cut-off windows plus
relights, measured over days or billing periods. Membership is decided at the
midpoints between all boundaries, which keeps every operation exact and short.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class IntervalSet:
    """Sorted, disjoint, non-empty half-open intervals [start, end)."""

    starts: FloatArray
    ends: FloatArray

    @staticmethod
    def of(pairs: list[tuple[float, float]] | FloatArray) -> IntervalSet:
        """Normalise arbitrary (possibly overlapping) pairs into a set."""
        arr = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
        arr = arr[arr[:, 1] > arr[:, 0]]
        if len(arr) == 0:
            return EMPTY
        arr = arr[np.argsort(arr[:, 0], kind="stable")]
        # Merge overlaps: a new group starts where a start exceeds every end so far.
        running_end = np.maximum.accumulate(arr[:, 1])
        new_group = np.empty(len(arr), dtype=bool)
        new_group[0] = True
        new_group[1:] = arr[1:, 0] > running_end[:-1]
        group = np.cumsum(new_group) - 1
        starts = arr[new_group, 0]
        ends = np.full(len(starts), -np.inf)
        np.maximum.at(ends, group, arr[:, 1])
        return IntervalSet(starts, ends)

    def __len__(self) -> int:
        return len(self.starts)

    def total(self) -> float:
        return float(np.sum(self.ends - self.starts))

    def contains(self, points: FloatArray) -> npt.NDArray[np.bool_]:
        idx = np.searchsorted(self.starts, points, side="right") - 1
        ok = idx >= 0
        safe = np.where(ok, idx, 0)
        return ok & (points < self.ends[safe]) if len(self) else np.zeros(len(points), dtype=bool)

    def cumulative(self, points: FloatArray) -> FloatArray:
        """Measure of the set in (-inf, t] for each t."""
        if not len(self):
            return np.zeros(len(points))
        cum_full = np.concatenate(([0.0], np.cumsum(self.ends - self.starts)))
        idx = np.searchsorted(self.starts, points, side="right")  # intervals started by t
        before = cum_full[np.maximum(idx - 1, 0)]
        last = np.maximum(idx - 1, 0)
        partial = np.clip(points - self.starts[last], 0.0, self.ends[last] - self.starts[last])
        return np.where(idx > 0, before + partial, 0.0)

    def overlap(self, bucket_starts: npt.ArrayLike, bucket_ends: npt.ArrayLike) -> FloatArray:
        """Seconds of the set inside each bucket [a, b)."""
        return self.cumulative(np.asarray(bucket_ends, dtype=np.float64)) - self.cumulative(
            np.asarray(bucket_starts, dtype=np.float64)
        )

    def _combine(self, other: IntervalSet, keep: str) -> IntervalSet:
        bounds = np.unique(np.concatenate((self.starts, self.ends, other.starts, other.ends)))
        if len(bounds) < 2:
            return EMPTY
        mids = (bounds[:-1] + bounds[1:]) / 2
        a, b = self.contains(mids), other.contains(mids)
        mask = {"and": a & b, "minus": a & ~b, "or": a | b}[keep]
        pairs = np.column_stack((bounds[:-1][mask], bounds[1:][mask]))
        return IntervalSet.of(pairs)

    def intersect(self, other: IntervalSet) -> IntervalSet:
        return self._combine(other, "and")

    def minus(self, other: IntervalSet) -> IntervalSet:
        return self._combine(other, "minus")

    def union(self, other: IntervalSet) -> IntervalSet:
        return self._combine(other, "or")


EMPTY = IntervalSet(np.zeros(0), np.zeros(0))
