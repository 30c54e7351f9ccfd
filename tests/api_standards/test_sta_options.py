"""The $filter parser and the SensorThings query options (no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from api.standards.odata_filter import (
    BoolOp,
    Comparison,
    FilterError,
    Not,
    Property,
    Value,
    compile_filter,
    parse,
)
from api.standards.sta_options import OptionError, parse_options

COLUMNS = {
    "phenomenonTime": (sql.Identifier("time"), "time"),
    "result": (sql.Identifier("value"), "number"),
}


def render(text: str) -> tuple[str, list[object]]:
    clause, params = compile_filter(parse(text), COLUMNS)  # type: ignore[arg-type]
    return clause.as_string(None), params


def test_precedence_and_before_or_with_parentheses_and_not() -> None:
    node = parse("result gt 1 or result lt 0 and not (phenomenonTime ge 2025-01-01T00:00:00Z)")
    assert isinstance(node, BoolOp) and node.op == "or"
    assert node.items[0] == Comparison("gt", Property("result"), Value(1.0))
    right = node.items[1]
    assert isinstance(right, BoolOp) and right.op == "and" and isinstance(right.items[1], Not)


def test_compiles_to_bound_parameters_only() -> None:
    text, params = render("phenomenonTime ge 2025-01-15T00:05:00.5+01:00 and result le -2.5e1")
    assert text == '(("time" >= %s) AND ("value" <= %s))'
    assert params == [datetime(2025, 1, 14, 23, 5, 0, 500000, tzinfo=UTC), -25.0]
    # A quoted datetime is accepted for a time property; a literal may come first.
    text, params = render("'2025-01-15T00:00:00Z' lt phenomenonTime")
    assert text == '(%s < "time")' and params == [datetime(2025, 1, 15, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("result gt", "unexpected end"),
        ("result gt 1 1", "unexpected '1'"),
        ("result like 1", "comparison operator"),
        ("name eq 'x'", "cannot filter on 'name'"),
        ("result gt 2025-01-01T00:00:00Z", "a number is needed"),
        ("phenomenonTime gt 3", "a datetime is needed"),
        ("1 eq 1", "at least one property"),
        ("result gt 1; DROP TABLE readings", "unexpected character"),
        ("(result gt 1", "unexpected end"),
        ("phenomenonTime gt 2025-13-01T00:00:00Z", "invalid datetime"),
        ("", "empty"),
    ],
)
def test_invalid_filters_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(FilterError, match=reason):
        render(text)


@given(st.text(max_size=60))
def test_arbitrary_text_never_escapes_the_grammar(text: str) -> None:
    try:
        clause, params = render(text)
    except FilterError:
        return
    # Whatever parsed, the SQL holds only our column names, operators and placeholders.
    rendered = clause
    for allowed in ('"time"', '"value"', "%s", "AND", "OR", "NOT", "(", ")", " ", "=", "<", ">"):
        rendered = rendered.replace(allowed, "")
    assert rendered == ""
    assert all(isinstance(p, float | datetime) for p in params)


def test_options_defaults_limits_and_expand_paths() -> None:
    options = parse_options({})
    assert (options.top, options.skip, options.count, options.expand) == (100, 0, False, {})
    options = parse_options({
        "$top": "5", "$skip": "10", "$count": "true", "$orderby": "phenomenonTime desc, result",
        "$expand": "Datastreams($top=2;$expand=Observations($orderby=result desc;$top=1)),Locations,Datastreams/Sensor",
    })  # fmt: skip
    assert (options.top, options.skip, options.count) == (5, 10, True)
    assert [(o.name, o.descending) for o in options.orderby] == [("phenomenonTime", True), ("result", False)]
    datastreams = options.expand["Datastreams"]
    assert datastreams.top == 2 and set(datastreams.expand) == {"Observations", "Sensor"}
    assert datastreams.expand["Observations"].top == 1
    assert set(options.expand) == {"Datastreams", "Locations"}


@pytest.mark.parametrize(
    "raw",
    [{"$top": "-1"}, {"$top": "5000"}, {"$skip": "x"}, {"$count": "yes"}, {"$orderby": "result sideways"},
     {"$expand": "Datastreams($top=1"}, {"$expand": "Data streams"}, {"$format": "json"},
     {"$filter": "result gt"}, {"$expand": "A(B(C(D(E))))".replace("(", "($expand=")}],
)  # fmt: skip
def test_bad_options_raise(raw: dict[str, str]) -> None:
    with pytest.raises(OptionError):
        parse_options(raw)
