"""JSON Schema (draft 4, as the OpenAPI 3.0 document uses it) compiled once into Python closures.

``jsonschema.Draft4Validator`` interprets the schema on every call: it walks the keywords,
resolves each ``$ref`` through the registry and builds a child validator per step, about a
millisecond per DCI envelope. :func:`compile_schema` does that walk once per process and returns
a predicate ``check(instance) -> bool`` with the same verdict as ``Draft4Validator.is_valid`` with
:data:`FORMAT_CHECKER` (``format: date-time`` asserted, other formats annotations, ``$ref``
siblings ignored, unknown keywords ignored as annotations).

Only the keywords this module implements are compiled; a schema that uses any other assertion
keyword (or an unexpected shape of one) raises :class:`Unsupported`, and the caller keeps
jsonschema for it. On a refusal the caller asks jsonschema for the errors, so the messages a
partner reads are jsonschema's own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from jsonschema import FormatChecker

Check = Callable[[object], bool]

# Draft 4 assertion keywords. Anything else in a schema object is an annotation and ignored,
# as jsonschema ignores it (description, example, nullable, x-..., format without a checker).
DRAFT4_KEYWORDS = {
    "$ref", "additionalItems", "additionalProperties", "allOf", "anyOf", "dependencies", "enum", "format", "items",
    "maxItems", "maxLength", "maxProperties", "maximum", "exclusiveMaximum", "minItems", "minLength",
    "minProperties", "minimum", "exclusiveMinimum", "multipleOf", "not", "oneOf", "pattern", "patternProperties",
    "properties", "required", "type", "uniqueItems",
}
IMPLEMENTED = {"$ref", "allOf", "anyOf", "oneOf", "not", "enum", "format", "items", "maxLength", "minLength",
               "maxItems", "minItems", "pattern", "properties", "required", "type", "additionalProperties",
               "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}


def is_date_time(value) -> bool:
    """The spec's ``format: date-time``: "all dates and timestamps are represented in ISO 8601 format
    including timezone - e.g 2022-12-04T17:20:07-04:00". A date without a time, or a time without
    its offset (``Z`` or ``±hh:mm``), is refused: a partner's clock cannot be placed without it.
    Not a string: not this keyword's business (draft 4). ``datetime.fromisoformat`` is C code, a
    microsecond per value, so the sync search's latency does not notice it."""
    if not isinstance(value, str):
        return True
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


# The formats asserted: only date-time, the one the DCI spec uses as an assertion (int32, uri and
# binary stay annotations, as they are for a Draft4Validator without a checker for them).
FORMATS: dict[str, Check] = {"date-time": is_date_time}
FORMAT_CHECKER = FormatChecker(formats=())
FORMAT_CHECKER.checks("date-time")(is_date_time)


class Unsupported(ValueError):
    """The schema uses something this compiler does not implement; use jsonschema for it."""


# draft 4 types: booleans are not numbers, and an integer is an int (1.0 is not one in draft 4)
def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_PY_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def _equal(a, b) -> bool:
    """jsonschema's equality: booleans are not numbers, containers compare deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return a == b


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


class Compiler:
    """Compiles schemas of one document; ``#/...`` references resolve against ``root``."""

    def __init__(self, root: dict) -> None:
        self.root = root
        self._refs: dict[str, Check] = {}

    def resolve(self, ref: str):
        if not ref.startswith("#"):
            raise Unsupported(f"only local references are compiled: {ref}")
        node = self.root
        for part in ref[1:].lstrip("/").split("/") if ref not in ("#", "#/") else []:
            part = _unescape(part)
            if isinstance(node, list):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                raise Unsupported(f"unresolvable reference {ref}")
        return node

    def ref(self, ref: str) -> Check:
        hit = self._refs.get(ref)
        if hit is not None:
            return hit
        target: list[Check] = []
        self._refs[ref] = lambda v: target[0](v)  # placeholder for recursive schemas
        check = self.compile(self.resolve(ref))
        target.append(check)
        self._refs[ref] = check
        return check

    def compile(self, schema) -> Check:
        if not isinstance(schema, dict):
            raise Unsupported("a schema must be an object in draft 4")
        if "$ref" in schema:  # draft 4: siblings of $ref are ignored
            if not isinstance(schema["$ref"], str):
                raise Unsupported("$ref must be a string")
            return self.ref(schema["$ref"])
        unknown = (DRAFT4_KEYWORDS - IMPLEMENTED) & schema.keys()
        if unknown:
            raise Unsupported(f"keywords not compiled: {', '.join(sorted(unknown))}")
        checks: list[Check] = []
        if "type" in schema:
            checks.append(self._type(schema["type"]))
        if "enum" in schema:
            checks.append(self._enum(schema["enum"]))
        if "properties" in schema or "required" in schema or "additionalProperties" in schema:
            checks.append(self._object(schema))
        if "items" in schema:
            checks.append(self._items(schema["items"]))
        for key, fn in (("minItems", lambda n: lambda v: not isinstance(v, list) or len(v) >= n),
                        ("maxItems", lambda n: lambda v: not isinstance(v, list) or len(v) <= n),
                        ("minLength", lambda n: lambda v: not isinstance(v, str) or len(v) >= n),
                        ("maxLength", lambda n: lambda v: not isinstance(v, str) or len(v) <= n)):
            if key in schema:
                n = schema[key]
                if not isinstance(n, int) or isinstance(n, bool):
                    raise Unsupported(f"{key} must be an integer")
                checks.append(fn(n))
        if "pattern" in schema:
            if not isinstance(schema["pattern"], str):
                raise Unsupported("pattern must be a string")
            search = re.compile(schema["pattern"]).search
            checks.append(lambda v: not isinstance(v, str) or search(v) is not None)
        if "minimum" in schema or "maximum" in schema:
            checks.append(self._range(schema))
        for key in ("allOf", "anyOf", "oneOf"):
            if key in schema:
                if not isinstance(schema[key], list) or not schema[key]:
                    raise Unsupported(f"{key} must be a non-empty list")
                parts = tuple(self.compile(s) for s in schema[key])
                if key == "allOf":
                    checks.append(lambda v, parts=parts: all(p(v) for p in parts))
                elif key == "anyOf":
                    checks.append(lambda v, parts=parts: any(p(v) for p in parts))
                else:
                    checks.append(lambda v, parts=parts: sum(1 for p in parts if p(v)) == 1)
        if "not" in schema:
            inner = self.compile(schema["not"])
            checks.append(lambda v: not inner(v))
        if schema.get("format") in FORMATS:  # any other format is an annotation, as in FORMAT_CHECKER
            checks.append(FORMATS[schema["format"]])
        if not checks:
            return lambda v: True
        if len(checks) == 1:
            return checks[0]
        checks_t = tuple(checks)
        return lambda v: all(c(v) for c in checks_t)

    def _type(self, kind) -> Check:
        kinds = [kind] if isinstance(kind, str) else kind
        if not isinstance(kinds, list) or not kinds or any(k not in TYPES for k in kinds):
            raise Unsupported(f"type {kind!r}")
        if len(kinds) == 1:
            k = kinds[0]
            if k in _PY_TYPES:
                t = _PY_TYPES[k]
                if t is bool:
                    return TYPES[k]
                return lambda v: isinstance(v, t)
            return TYPES[k]
        tests = tuple(TYPES[k] for k in kinds)
        return lambda v: any(t(v) for t in tests)

    @staticmethod
    def _enum(values) -> Check:
        if not isinstance(values, list):
            raise Unsupported("enum must be a list")
        if all(isinstance(x, str) for x in values):
            allowed = frozenset(values)
            return lambda v: isinstance(v, str) and v in allowed
        items = tuple(values)
        return lambda v: any(_equal(v, x) for x in items)

    def _object(self, schema: dict) -> Check:
        props = schema.get("properties", {})
        required = schema.get("required", [])
        extra = schema.get("additionalProperties", True)
        if not isinstance(props, dict) or not isinstance(required, list) \
                or not all(isinstance(r, str) for r in required):
            raise Unsupported("properties must be an object and required a list of names")
        compiled = tuple((name, self.compile(s)) for name, s in props.items())
        req = tuple(required)
        if extra is True or extra == {}:
            extra_check = None
        elif extra is False:
            names = frozenset(props)
            extra_check = lambda d: all(k in names for k in d)  # noqa: E731
        else:
            names = frozenset(props)
            sub = self.compile(extra)
            extra_check = lambda d: all(sub(val) for k, val in d.items() if k not in names)  # noqa: E731

        def check(v) -> bool:
            if not isinstance(v, dict):
                return True
            for name in req:
                if name not in v:
                    return False
            for name, c in compiled:
                if name in v and not c(v[name]):
                    return False
            return extra_check is None or extra_check(v)
        return check

    def _items(self, items) -> Check:
        if not isinstance(items, dict):
            raise Unsupported("items as a list (tuple validation) is not compiled")
        each = self.compile(items)
        return lambda v: not isinstance(v, list) or all(each(x) for x in v)

    @staticmethod
    def _range(schema: dict) -> Check:
        lo, hi = schema.get("minimum"), schema.get("maximum")
        ex_lo, ex_hi = schema.get("exclusiveMinimum", False), schema.get("exclusiveMaximum", False)
        for bound in (lo, hi):
            if bound is not None and not _is_number(bound):
                raise Unsupported("minimum and maximum must be numbers")
        if not isinstance(ex_lo, bool) or not isinstance(ex_hi, bool):
            raise Unsupported("exclusiveMinimum/Maximum are booleans in draft 4")

        def check(v) -> bool:
            if not _is_number(v):
                return True
            if lo is not None and (v <= lo if ex_lo else v < lo):
                return False
            return hi is None or not (v >= hi if ex_hi else v > hi)
        return check


def compile_schema(root: dict, ref: str) -> Check:
    """A predicate for the schema at ``ref`` (``#/...``) of ``root``; raises :class:`Unsupported`."""
    return Compiler(root).ref(ref)


__all__ = ["Compiler", "FORMAT_CHECKER", "Unsupported", "compile_schema", "is_date_time"]
