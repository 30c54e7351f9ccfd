"""The NGSI-LD `q` subset we serve: `attr op value` terms joined by ';' (and).

op is one of == != > >= < <=; value is a number, a "double-quoted" string or a
bare word (a string). A term on an attribute the entity lacks is false.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_TERM = re.compile(r'^\s*([A-Za-z][A-Za-z0-9_]*)\s*(==|!=|>=|<=|>|<)\s*("(?:[^"\\]|\\.)*"|[^;"]+?)\s*$')
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$")


class QueryError(ValueError):
    """`q` is outside the supported subset."""


Predicate = Callable[[dict[str, Any]], bool]


def _compare(actual: object, op: str, expected: float | str) -> bool:
    if isinstance(expected, float):
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return False
        number = float(actual)
        return {"==": number == expected, "!=": number != expected, ">": number > expected,
                ">=": number >= expected, "<": number < expected, "<=": number <= expected}[op]  # fmt: skip
    if not isinstance(actual, str):
        return op == "!="
    return {"==": actual == expected, "!=": actual != expected, ">": actual > expected,
            ">=": actual >= expected, "<": actual < expected, "<=": actual <= expected}[op]  # fmt: skip


def parse_q(text: str) -> Predicate:
    terms: list[tuple[str, str, float | str]] = []
    for part in text.split(";"):
        match = _TERM.match(part)
        if match is None:
            raise QueryError(
                f"unsupported q term {part.strip()!r}: expected attribute op value, op in == != > >= < <="
            )
        name, op, raw = match.groups()
        value: float | str
        if raw.startswith('"'):
            value = raw[1:-1].replace('\\"', '"')
        elif _NUMBER.match(raw):
            value = float(raw)
        else:
            value = raw
        terms.append((name, op, value))

    def predicate(entity: dict[str, Any]) -> bool:
        for name, op, value in terms:
            attribute = entity.get(name)
            if not isinstance(attribute, dict):
                return False
            actual = attribute.get("value", attribute.get("object"))
            if not _compare(actual, op, value):
                return False
        return True

    return predicate
