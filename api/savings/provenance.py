"""The result envelope every savings metric returns: method, inputs, period, result.

Inputs are hashed over a canonical JSON form (sorted keys, floats rounded to
12 significant digits, arrays by content), so a result names exactly what it
was computed from and the same inputs always give the same hash and answer.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _canonical(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"array_sha256": array_digest(value), "n": int(value.size)}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if not math.isfinite(f) or f == 0 else float(f"{f:.12g}")
    if isinstance(value, np.integer):
        return int(value)
    return value


def array_digest(values: np.ndarray[Any, Any]) -> str:
    data = np.ascontiguousarray(np.asarray(values, dtype=np.float64))
    return hashlib.sha256(data.tobytes()).hexdigest()


def inputs_hash(inputs: dict[str, Any]) -> str:
    text = json.dumps(_canonical(inputs), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def rounded(value: float, digits: int = 6) -> float:
    return round(float(value), digits)


@dataclass(frozen=True)
class SavingsResult:
    method: str
    inputs: dict[str, Any]
    period: dict[str, str]
    result: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def inputs_hash(self) -> str:
        return inputs_hash(self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "inputs": _canonical(self.inputs),
            "inputs_hash": self.inputs_hash,
            "period": self.period,
            "result": _canonical(self.result),
            "details": _canonical(self.details),
        }
