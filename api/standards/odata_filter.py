"""A small, safe parser for the SensorThings `$filter` subset we serve.

Grammar (case-sensitive keywords, as in OData):

    expr       := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | "(" expr ")" | comparison
    comparison := operand OP operand        OP in eq ne gt ge lt le
    operand    := property | number | datetime | 'string' | true | false

Properties are mapped to SQL columns by the caller; literals become bound
parameters, so nothing from the query string is ever pasted into SQL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from psycopg import sql

OPERATORS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
MAX_FILTER_LENGTH = 2000

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2}))
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<string>'(?:[^']|'')*')
    | (?P<name>[A-Za-z_@][A-Za-z0-9_/@.]*)
    | (?P<paren>[()])
    )""",
    re.VERBOSE,
)


class FilterError(ValueError):
    """The `$filter` text is outside the supported grammar; the message says where."""


Kind = Literal["time", "number"]


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    position: int


@dataclass(frozen=True)
class Property:
    name: str


@dataclass(frozen=True)
class Value:
    value: float | datetime | str | bool


@dataclass(frozen=True)
class Comparison:
    op: str
    left: Property | Value
    right: Property | Value


@dataclass(frozen=True)
class BoolOp:
    op: Literal["and", "or"]
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Comparison | BoolOp | Not


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"$filter longer than {MAX_FILTER_LENGTH} characters")
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise FilterError(f"unexpected character at position {pos}: {text[pos : pos + 10]!r}")
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise FilterError("unexpected end of $filter")
        self.index += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "name" and token.text == word:
            self.index += 1
            return True
        return False

    def expr(self) -> Node:
        items = [self.and_expr()]
        while self.keyword("or"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_expr(self) -> Node:
        items = [self.unary()]
        while self.keyword("and"):
            items.append(self.unary())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def unary(self) -> Node:
        if self.keyword("not"):
            return Not(self.unary())
        token = self.peek()
        if token is not None and token.kind == "paren" and token.text == "(":
            self.index += 1
            node = self.expr()
            closing = self.take()
            if closing.text != ")":
                raise FilterError(f"expected ')' at position {closing.position}")
            return node
        left = self.operand()
        op = self.take()
        if op.kind != "name" or op.text not in OPERATORS:
            raise FilterError(f"expected a comparison operator (eq ne gt ge lt le) at position {op.position}")
        return Comparison(op.text, left, self.operand())

    def operand(self) -> Property | Value:
        token = self.take()
        if token.kind == "number":
            return Value(float(token.text))
        if token.kind == "datetime":
            return Value(_parse_datetime(token.text))
        if token.kind == "string":
            return Value(token.text[1:-1].replace("''", "'"))
        if token.kind == "name":
            if token.text in ("true", "false"):
                return Value(token.text == "true")
            return Property(token.text)
        raise FilterError(f"expected a property or a literal at position {token.position}")


def _parse_datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FilterError(f"invalid datetime literal {text!r}") from exc


def parse(text: str) -> Node:
    tokens = tokenize(text)
    if not tokens:
        raise FilterError("empty $filter")
    parser = _Parser(tokens)
    node = parser.expr()
    leftover = parser.peek()
    if leftover is not None:
        raise FilterError(f"unexpected {leftover.text!r} at position {leftover.position}")
    return node


def compile_filter(
    node: Node, columns: Mapping[str, tuple[sql.Composable, Kind]]
) -> tuple[sql.Composable, list[object]]:
    """SQL for `node`, with properties resolved through `columns` (name -> SQL, kind)."""
    params: list[object] = []

    def operand(item: Property | Value, kind: Kind) -> sql.Composable:
        if isinstance(item, Property):
            return columns[item.name][0]
        value = item.value
        if kind == "time" and isinstance(value, str):
            value = _parse_datetime(value)
        if kind == "time" and not isinstance(value, datetime):
            raise FilterError(f"a datetime is needed, not {value!r}")
        if kind == "number" and (isinstance(value, bool) or not isinstance(value, float)):
            raise FilterError(f"a number is needed, not {value!r}")
        params.append(value)
        return sql.Placeholder()

    def kind_of(item: Property | Value) -> Kind | None:
        if isinstance(item, Property):
            if item.name not in columns:
                raise FilterError(f"cannot filter on {item.name!r}; supported: {', '.join(sorted(columns))}")
            return columns[item.name][1]
        return None

    def walk(item: Node) -> sql.Composable:
        if isinstance(item, Not):
            return sql.SQL("(NOT {})").format(walk(item.item))
        if isinstance(item, BoolOp):
            joiner = sql.SQL(" AND " if item.op == "and" else " OR ")
            return sql.SQL("({})").format(joiner.join(walk(i) for i in item.items))
        kind = kind_of(item.left) or kind_of(item.right)
        if kind is None:
            raise FilterError("a comparison needs at least one property")
        left, right = operand(item.left, kind), operand(item.right, kind)
        return sql.SQL("({} {} {})").format(left, sql.SQL(OPERATORS[item.op]), right)

    return walk(node), params
