"""Validation of YAML documents into frozen dataclasses, without pydantic.

The edge agent runs on gateways with 1-4 GB of RAM; importing pydantic and
building its schemas cost about 20 MB of its resident memory, for a config and
a few profiles read once at start-up. The models here are plain frozen,
keyword-only dataclasses deriving from `Model`, whose fields are annotated with
the types YAML produces (str, int, float, bool, None, lists, mappings), `Path`,
`Secret`, `Literal`, unions (of models: by the `type` tag when every member has
one, else the first that fits), other models, and `Annotated[..., Check(...)]`
constraints. Messages follow pydantic's wording ("Input should be a valid
integer", "Extra inputs are not permitted", ...), with the location of each
problem, so callers can name the field. Constructing a model with keywords
validates too (`ModbusTcpConfig(host=..., ...)`).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

Loc = tuple[int | str, ...]


@dataclasses.dataclass(frozen=True)
class ErrorDetail:
    loc: Loc
    type: str
    msg: str


class ValidationError(ValueError):
    """One or more problems, each with its location (pydantic's `errors()` shape)."""

    def __init__(self, details: Sequence[ErrorDetail]):
        self.details = list(details)
        super().__init__(self._text())

    def errors(self) -> list[ErrorDetail]:
        return list(self.details)

    def _text(self) -> str:
        lines = [f"{len(self.details)} validation error{'s' if len(self.details) != 1 else ''}"]
        for d in self.details:
            lines.append(f"{loc_text(d.loc) or '(top level)'}: {d.msg} [type={d.type}]")
        return "\n".join(lines)

    def prefixed(self, loc: Loc) -> ValidationError:
        return ValidationError([ErrorDetail(loc + d.loc, d.type, d.msg) for d in self.details])


def loc_text(loc: Loc) -> str:
    """('sources', 0, 'port') -> 'sources[0].port'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _fail(kind: str, msg: str, loc: Loc = ()) -> ValidationError:
    return ValidationError([ErrorDetail(loc, kind, msg)])


class Secret:
    """A string kept out of reprs and logs (pydantic's SecretStr)."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclasses.dataclass(frozen=True)
class Check:
    """Constraints of one field, for `Annotated[type, Check(...)]`.

    `call` runs last on the converted value; a ValueError it raises is reported at the field.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    description: str | None = None
    call: Callable[[Any], Any] | None = None

    def apply(self, value: Any) -> Any:
        if self.ge is not None and value < self.ge:
            raise _fail("greater_than_equal", f"Input should be greater than or equal to {self.ge}")
        if self.gt is not None and value <= self.gt:
            raise _fail("greater_than", f"Input should be greater than {self.gt}")
        if self.le is not None and value > self.le:
            raise _fail("less_than_equal", f"Input should be less than or equal to {self.le}")
        if self.lt is not None and value >= self.lt:
            raise _fail("less_than", f"Input should be less than {self.lt}")
        if self.min_length is not None and len(value) < self.min_length:
            raise _fail("too_short", _length_text(value, "at least", self.min_length))
        if self.max_length is not None and len(value) > self.max_length:
            raise _fail("too_long", _length_text(value, "at most", self.max_length))
        if self.pattern is not None and not re.search(self.pattern, value):
            raise _fail("string_pattern_mismatch", f"String should match pattern '{self.pattern}'")
        if self.call is not None:
            try:
                value = self.call(value)
            except ValueError as exc:
                raise _fail("value_error", str(exc)) from None
        return value


def _length_text(value: Any, bound: str, length: int) -> str:
    """'String should have at least 1 character', 'List should have at most 3 items after validation'."""
    what = "String" if isinstance(value, str) else "List" if isinstance(value, list) else "Dictionary"
    unit = "character" if isinstance(value, str) else "item"
    after = "" if isinstance(value, str) else " after validation"
    return f"{what} should have {bound} {length} {unit}{'s' if length != 1 else ''}{after}"


class Model:
    """Base of the validated dataclasses: `Model.validate(document)` or keyword construction."""

    __hints__: ClassVar[dict[str, Any]]

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        problems: list[ErrorDetail] = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            try:
                object.__setattr__(self, f.name, convert(hints[f.name], getattr(self, f.name), (f.name,)))
            except ValidationError as exc:
                problems += exc.details
        if problems:
            raise ValidationError(problems)
        try:
            self.check()
        except ValueError as exc:
            if isinstance(exc, ValidationError):
                raise
            raise _fail("value_error", str(exc)) from None

    def check(self) -> None:
        """Rules across fields; raise ValueError."""

    @classmethod
    def validate(cls, document: object) -> Self:
        result: Self = convert(cls, document, ())
        return result

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]


def _hints(cls: type) -> dict[str, Any]:
    """The class's type hints, extras kept; computed once per class and shared: read, never mutate."""
    cached: dict[str, Any] | None = cls.__dict__.get("__hints__")
    if cached is None:
        cached = typing.get_type_hints(cls, include_extras=True)
        cls.__hints__ = cached  # type: ignore[attr-defined]
    return cached


def _model_from(cls: type[Model], value: object, loc: Loc) -> Model:
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise _fail("model_type", f"Input should be a valid dictionary or instance of {cls.__name__}", loc)
    problems: list[ErrorDetail] = []
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name, f in known.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in value:
            problems.append(ErrorDetail((*loc, name), "missing", "Field required"))
    for key in value:
        if key not in known:
            problems.append(ErrorDetail((*loc, key), "extra_forbidden", "Extra inputs are not permitted"))
    if problems:
        raise ValidationError(problems)
    try:
        return cls(**{k: v for k, v in value.items() if k in known})
    except ValidationError as exc:
        raise exc.prefixed(loc) from None


def _tag(cls: type) -> tuple[Any, ...] | None:
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        return None
    hint = _hints(cls).get("type")
    if hint is None or typing.get_origin(hint) is not Literal:
        return None
    return typing.get_args(hint)


def _choices(values: Sequence[Any]) -> str:
    shown = [repr(v) for v in values]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def convert(hint: Any, value: Any, loc: Loc) -> Any:
    """Check `value` against the type `hint` and return it converted (Path, Secret, models)."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base, *extras = typing.get_args(hint)
        value = convert(base, value, loc)
        for extra in extras:
            if isinstance(extra, Check):
                try:
                    value = extra.apply(value)
                except ValidationError as exc:
                    raise exc.prefixed(loc) from None
        return value
    if hint is Any or hint is object:
        return value
    if origin is Literal:
        allowed = typing.get_args(hint)
        for choice in allowed:
            if type(choice) is type(value) and choice == value:
                return choice
        raise _fail("literal_error", f"Input should be {_choices(allowed)}", loc)
    if origin is typing.Union or origin is types.UnionType:
        return _union(typing.get_args(hint), value, loc)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise _fail("list_type", "Input should be a valid list", loc)
        (item,) = typing.get_args(hint)
        out, problems = [], []
        for index, element in enumerate(value):
            try:
                out.append(convert(item, element, (*loc, index)))
            except ValidationError as exc:
                problems += exc.details
        if problems:
            raise ValidationError(problems)
        return out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _fail("dict_type", "Input should be a valid dictionary", loc)
        key_hint, value_hint = typing.get_args(hint)
        result, problems = {}, []
        for key, element in value.items():
            try:
                result[convert(key_hint, key, (*loc, key))] = convert(value_hint, element, (*loc, key))
            except ValidationError as exc:
                problems += exc.details
        if problems:
            raise ValidationError(problems)
        return result
    if hint is type(None):
        if value is None:
            return None
        raise _fail("none_required", "Input should be None", loc)
    if isinstance(hint, type) and issubclass(hint, Model):
        return _model_from(hint, value, loc)
    scalar = _SCALARS.get(hint)
    if scalar is None:
        raise TypeError(f"no validation for {hint!r}")
    return scalar(value, loc)


def _union(members: Sequence[Any], value: Any, loc: Loc) -> Any:
    if value is None and type(None) in members:
        return None
    members = [m for m in members if m is not type(None)]
    tags = [_tag(m) for m in members]
    if len(members) > 1 and all(tags):
        if isinstance(value, Model) and type(value) in members:
            return value
        if not isinstance(value, Mapping) or "type" not in value:
            raise _fail("union_tag_not_found", "Unable to extract tag using discriminator 'type'", loc)
        every = [t for ts in tags for t in ts or ()]
        for member, member_tags in zip(members, tags, strict=True):
            if value["type"] in (member_tags or ()):
                return convert(member, value, loc)
        raise _fail(
            "union_tag_invalid",
            f"Input tag {value['type']!r} found using 'type' does not match any of the expected tags: "
            + ", ".join(repr(t) for t in every),
            loc,
        )
    exact = [m for m in members if isinstance(m, type) and not issubclass(m, Model) and type(value) is m]
    ordered = exact + [m for m in members if m not in exact]
    if isinstance(value, Mapping):  # models: the one whose fields cover the document's keys first
        covering = [
            m
            for m in ordered
            if isinstance(m, type) and issubclass(m, Model) and set(value) <= set(m.field_names())
        ]
        ordered = covering + [m for m in ordered if m not in covering]
    first: ValidationError | None = None
    for member in ordered:
        try:
            return convert(member, value, loc)
        except ValidationError as exc:
            first = first or exc
    if first is not None and (len(members) == 1 or isinstance(value, Mapping)):
        raise first
    names = ", ".join(getattr(m, "__name__", str(m)) for m in members)
    raise _fail("union", f"Input should be one of: {names}", loc)


def _int(value: Any, loc: Loc) -> int:
    if isinstance(value, bool):
        raise _fail("int_type", "Input should be a valid integer", loc)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise _fail(
            "int_from_float", "Input should be a valid integer, got a number with a fractional part", loc
        )
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise _fail(
                "int_parsing", "Input should be a valid integer, unable to parse string as an integer", loc
            ) from None
    raise _fail("int_type", "Input should be a valid integer", loc)


def _float(value: Any, loc: Loc) -> float:
    if isinstance(value, bool):
        raise _fail("float_type", "Input should be a valid number", loc)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise _fail(
                "float_parsing", "Input should be a valid number, unable to parse string as a number", loc
            ) from None
    raise _fail("float_type", "Input should be a valid number", loc)


_TRUE = {"true", "yes", "on", "1", "y", "t"}
_FALSE = {"false", "no", "off", "0", "n", "f"}


def _bool(value: Any, loc: Loc) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _fail("bool_type", "Input should be a valid boolean", loc)


def _str(value: Any, loc: Loc) -> str:
    if isinstance(value, str):
        return value
    raise _fail("string_type", "Input should be a valid string", loc)


def _path(value: Any, loc: Loc) -> Path:
    if isinstance(value, Path):
        return value
    if isinstance(value, str):
        return Path(value)
    raise _fail("path_type", "Input is not a valid path", loc)


def _secret(value: Any, loc: Loc) -> Secret:
    if isinstance(value, Secret):
        return value
    return Secret(_str(value, loc))


_SCALARS: dict[Any, Callable[[Any, Loc], Any]] = {
    int: _int,
    float: _float,
    bool: _bool,
    str: _str,
    Path: _path,
    Secret: _secret,
}


# --------------------------------------------------------------------------- JSON Schema


def json_schema(hint: Any) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of a type, for editors; models become `$defs` entries."""
    defs: dict[str, Any] = {}
    root = _schema(hint, defs)
    if "$ref" in root:
        name = root["$ref"].rsplit("/", 1)[1]
        root = defs.pop(name)
    if defs:
        root["$defs"] = defs
    return root


def _schema(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base, *extras = typing.get_args(hint)
        out = _schema(base, defs)
        for extra in extras:
            if isinstance(extra, Check):
                for key, name in (("ge", "minimum"), ("gt", "exclusiveMinimum"), ("le", "maximum"),
                                  ("lt", "exclusiveMaximum"), ("pattern", "pattern"),
                                  ("description", "description")):  # fmt: skip
                    if getattr(extra, key) is not None:
                        out[name] = getattr(extra, key)
                size = ("minItems", "maxItems") if out.get("type") == "array" else ("minLength", "maxLength")
                if extra.min_length is not None:
                    out[size[0]] = extra.min_length
                if extra.max_length is not None:
                    out[size[1]] = extra.max_length
        return out
    if origin is Literal:
        values = list(typing.get_args(hint))
        return {"const": values[0]} if len(values) == 1 else {"enum": values}
    if origin is typing.Union or origin is types.UnionType:
        members = typing.get_args(hint)
        out = {"anyOf": [_schema(m, defs) for m in members]}
        tags = [_tag(m) for m in members if m is not type(None)]
        if len(tags) > 1 and all(tags):
            out = {"oneOf": out["anyOf"], "discriminator": {"propertyName": "type"}}
        return out
    if origin is list:
        return {"type": "array", "items": _schema(typing.get_args(hint)[0], defs)}
    if origin is dict:
        key, item = typing.get_args(hint)
        out = {"type": "object", "additionalProperties": _schema(item, defs)}
        key_schema = _schema(key, defs)
        if "pattern" in key_schema:
            out["propertyNames"] = {"pattern": key_schema["pattern"]}
        return out
    if hint is type(None):
        return {"type": "null"}
    if isinstance(hint, type) and issubclass(hint, Model):
        name = hint.__name__.lstrip("_")
        if name not in defs:
            defs[name] = {}  # recursion guard
            hints = _hints(hint)
            properties: dict[str, Any] = {}
            required: list[str] = []
            for f in dataclasses.fields(hint):  # type: ignore[arg-type]
                prop = _schema(hints[f.name], defs)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    required.append(f.name)
                elif f.default is not dataclasses.MISSING and _plain(f.default):
                    prop["default"] = f.default.__fspath__() if isinstance(f.default, Path) else f.default
                properties[f.name] = prop
            doc: dict[str, Any] = {
                "type": "object",
                "title": name,
                "properties": properties,
                "additionalProperties": False,
            }
            if required:
                doc["required"] = required
            defs[name] = doc
        return {"$ref": f"#/$defs/{name}"}
    simple = {
        int: "integer",
        float: "number",
        bool: "boolean",
        str: "string",
        Path: "string",
        Secret: "string",
    }
    if hint in simple:
        out = {"type": simple[hint]}
        if hint is Path:
            out["format"] = "path"
        if hint is Secret:
            out.update(format="password", writeOnly=True)
        return out
    return {}


def _plain(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool | Path)
