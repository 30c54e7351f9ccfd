"""User-supplied LoRaWAN codecs in the LoRa Alliance TS013 form, run in QuickJS.

The engine is quickjs-ng through the `python-quickjs-ng` package (import name
`quickjs`): ES2020 like ChirpStack's own codec runtime, abi3 wheels for x86-64
and aarch64, and a memory limit that counts every allocation, ArrayBuffers
included. One interpreter per codec, with a time and a memory limit: a codec
that loops, recurses or allocates without end is stopped and reported as a
CodecError. The codec sees no file system, network or timers; data cross the
boundary as JSON text only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import quickjs

from territoire_kernel.errors import CodecError
from territoire_kernel.records import AttrValue

TIME_LIMIT_S = 0.1
MEMORY_LIMIT_BYTES = 16 * 1024 * 1024

# Inputs and outputs cross the boundary as JSON text: the engine never sees Python objects.
_GLUE = """
function __territoire_decode(text) {
    var input = JSON.parse(text);
    return JSON.stringify(decodeUplink(input));
}
function __territoire_encode(text) {
    if (typeof encodeDownlink !== "function") { throw new Error("the codec has no encodeDownlink"); }
    return JSON.stringify(encodeDownlink(JSON.parse(text)));
}
"""


class JsCodec:
    def __init__(self, source: str, name: str, *, time_limit_s: float = TIME_LIMIT_S,
                 memory_limit_bytes: int = MEMORY_LIMIT_BYTES):  # fmt: skip
        self.name = name
        self._lock = threading.Lock()  # a QuickJS context is not thread-safe
        self._context = quickjs.Context()
        self._context.set_memory_limit(memory_limit_bytes)
        self._context.set_time_limit(time_limit_s)
        try:
            self._context.eval(source)
            self._context.eval(_GLUE)
        except quickjs.JSException as exc:  # StackOverflow is one too
            raise CodecError(f"{name}: the codec does not load: {_first_line(exc)}") from None
        if self._context.eval("typeof decodeUplink") != "function":
            raise CodecError(f"{name}: the codec defines no decodeUplink function")

    def _call(self, function: str, argument: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            # QuickJS frees by reference counting and collects cycles on its own; a full
            # collection (milliseconds) is forced only after a failure, to give the memory back.
            try:
                answer = self._context.get(function)(json.dumps(argument))
            except quickjs.JSException as exc:  # StackOverflow is one too
                self._context.gc()
                raise CodecError(f"{self.name}: {_first_line(exc)}") from None
            except Exception as exc:  # the binding's own errors (e.g. a value it cannot convert)
                self._context.gc()
                raise CodecError(f"{self.name}: the codec failed: {type(exc).__name__}: {exc}") from None
        if not isinstance(answer, str):
            raise CodecError(f"{self.name}: the codec returned nothing")
        try:
            result = json.loads(answer)
        except ValueError:
            raise CodecError(f"{self.name}: the codec returned invalid JSON") from None
        if not isinstance(result, dict):
            raise CodecError(f"{self.name}: the codec must return an object")
        errors = result.get("errors") or []
        if errors:
            raise CodecError(f"{self.name}: " + "; ".join(str(e) for e in errors))
        return result

    def decode(self, payload: bytes, f_port: int, recv_time: str, variables: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
        result = self._call(
            "__territoire_decode",
            {"bytes": list(payload), "fPort": f_port, "recvTime": recv_time, "variables": dict(variables)},
        )
        data = result.get("data")
        if not isinstance(data, dict):
            raise CodecError(f"{self.name}: decodeUplink must return {{data: {{...}}}}")
        return data, [str(w) for w in result.get("warnings") or []]

    def encode(self, data: Mapping[str, AttrValue]) -> tuple[int, bytes]:
        result = self._call("__territoire_encode", {"data": dict(data)})
        raw, f_port = result.get("bytes"), result.get("fPort")
        if not isinstance(raw, list) or not all(isinstance(b, int) and 0 <= b <= 255 for b in raw):
            raise CodecError(f"{self.name}: encodeDownlink must return bytes as integers 0..255")
        if not isinstance(f_port, int) or not 1 <= f_port <= 223:
            raise CodecError(f"{self.name}: encodeDownlink must return an fPort 1..223")
        return f_port, bytes(raw)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
