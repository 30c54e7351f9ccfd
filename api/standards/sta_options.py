"""SensorThings query options ($top, $skip, $count, $orderby, $filter, $expand, $select).

Options are parsed once into `QueryOptions`; `$expand` items carry their own
nested options, written `Datastreams($top=2;$expand=Observations($top=1))` or
as a path `Datastreams/Observations`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from api.standards.odata_filter import FilterError, Node, parse

DEFAULT_TOP = 100
MAX_TOP = 1000
MAX_EXPAND_DEPTH = 3


class OptionError(ValueError):
    """A query option is malformed or unsupported; answered with 400."""


@dataclass(frozen=True)
class OrderItem:
    name: str
    descending: bool


@dataclass(frozen=True)
class QueryOptions:
    top: int = DEFAULT_TOP
    skip: int = 0
    count: bool = False
    orderby: tuple[OrderItem, ...] = ()
    filter: Node | None = None
    filter_text: str | None = None
    select: frozenset[str] | None = None
    expand: dict[str, QueryOptions] = field(default_factory=dict)


def _int(name: str, text: str, maximum: int) -> int:
    if not re.fullmatch(r"\s*[0-9]{1,12}\s*", text):
        raise OptionError(f"{name} must be a non-negative integer, not {text!r}")
    value = int(text)
    if value > maximum:
        raise OptionError(f"{name} is at most {maximum}")
    return value


def _split_top_level(text: str, separator: str) -> list[str]:
    """Split on `separator` outside parentheses and quoted strings."""
    parts, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(text):
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth < 0:
                raise OptionError(f"unbalanced ')' in {text!r}")
        elif not quoted and depth == 0 and char == separator:
            parts.append(text[start:index])
            start = index + 1
    if depth != 0 or quoted:
        raise OptionError(f"unbalanced parentheses or quotes in {text!r}")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _orderby(text: str) -> tuple[OrderItem, ...]:
    items = []
    for part in _split_top_level(text, ","):
        words = part.split()
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise OptionError(f"$orderby item {part!r} must be 'property [asc|desc]'")
        items.append(OrderItem(words[0], len(words) == 2 and words[1].lower() == "desc"))
    return tuple(items)


def _merge(target: dict[str, QueryOptions], path: list[str], options: QueryOptions) -> None:
    head = path[0]
    if len(path) == 1:
        existing = target.get(head)
        merged = dict(existing.expand) if existing else {}
        merged.update(options.expand)
        target[head] = QueryOptions(
            options.top, options.skip, options.count, options.orderby, options.filter,
            options.filter_text, options.select, merged,
        )  # fmt: skip
        return
    if head not in target:
        target[head] = QueryOptions()
    _merge(target[head].expand, path[1:], options)


def _expand(text: str, depth: int) -> dict[str, QueryOptions]:
    if depth > MAX_EXPAND_DEPTH:
        raise OptionError(f"$expand is nested deeper than {MAX_EXPAND_DEPTH} levels")
    result: dict[str, QueryOptions] = {}
    for item in _split_top_level(text, ","):
        if "(" in item:
            if not item.endswith(")"):
                raise OptionError(f"$expand item {item!r} must end with ')'")
            path_text, inner = item[: item.index("(")], item[item.index("(") + 1 : -1]
            raw = {}
            for option in _split_top_level(inner, ";"):
                name, sep, value = option.partition("=")
                if not sep:
                    raise OptionError(f"expected name=value in {option!r}")
                raw[name.strip()] = value.strip()
            nested = parse_options(raw, depth + 1)
        else:
            path_text, nested = item, QueryOptions()
        path = [p.strip() for p in path_text.split("/")]
        if not all(p.isidentifier() for p in path):
            raise OptionError(f"invalid $expand path {path_text!r}")
        _merge(result, path, nested)
    return result


KNOWN = {"$top", "$skip", "$count", "$orderby", "$filter", "$expand", "$select"}


def parse_options(raw: Mapping[str, str], depth: int = 0) -> QueryOptions:
    unknown = sorted(k for k in raw if k.startswith("$") and k not in KNOWN)
    if unknown:
        raise OptionError(f"unsupported query option(s): {', '.join(unknown)}")
    count_text = raw.get("$count", "false").strip().lower()
    if count_text not in ("true", "false"):
        raise OptionError("$count must be true or false")
    filter_text = raw.get("$filter")
    try:
        node = parse(filter_text) if filter_text is not None else None
    except FilterError as exc:
        raise OptionError(f"invalid $filter: {exc}") from exc
    select = raw.get("$select")
    return QueryOptions(
        top=_int("$top", raw["$top"], MAX_TOP) if "$top" in raw else DEFAULT_TOP,
        skip=_int("$skip", raw["$skip"], 10**9) if "$skip" in raw else 0,
        count=count_text == "true",
        orderby=_orderby(raw["$orderby"]) if "$orderby" in raw else (),
        filter=node,
        filter_text=filter_text,
        select=frozenset(_split_top_level(select, ",")) if select else None,
        expand=_expand(raw["$expand"], depth) if "$expand" in raw else {},
    )
