"""One shape for every error /api/v1 returns, and an OpenAPI that says which errors each route can return.

Every refusal under /api/v1 (a route's ``HTTPException``, a parameter or body that fails validation)
answers :class:`ErrorBody`: ``detail`` is a sentence fit to show to the user, ``field`` names the
parameter or body field at fault when there is one, and ``errors`` lists every problem a validation
found. /dci keeps the DCI specification's own envelope and is left alone here; web pages answer a bad
address with an HTML page (the ``page`` handler given to :func:`install`).

The documented responses are derived from each route, so they cannot drift from the code: a route
behind sign-in can answer 401 and 403, one with parameters or a body 422, one with a record id in its
path 404. Routes that refuse a repeated or conflicting action declare 409 themselves (``CONFLICT``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

API_PREFIX = "/api/v1"
LOCATIONS = ("query", "path", "body", "header", "cookie")


class FieldProblem(BaseModel):
    field: str | None = Field(description="the parameter or body field, dotted for nested ones (changes.rooms)")
    message: str


class ErrorBody(BaseModel):
    """Every /api/v1 error answer."""
    detail: str = Field(description="what is wrong, in a sentence fit to show to the user")
    field: str | None = Field(None, description="the parameter or body field at fault, when there is one")
    errors: list[FieldProblem] = Field(default_factory=list, description="each problem a validation found (422)")


DESCRIPTIONS = {
    400: "The request cannot be read.",
    401: "Not signed in, or the token is invalid or expired.",
    403: "Your role or district may not do this.",
    404: "No such record, or not one you may see.",
    409: "Conflicts with the record's state: already done, needs a second person, or received before.",
    422: "A parameter or body field is invalid; `field` names it.",
    429: "Too many failed attempts from this address: wait for the window to pass.",
}


def responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI ``responses=`` entries for these error codes, all with the :class:`ErrorBody` schema."""
    return {code: {"model": ErrorBody, "description": DESCRIPTIONS[code]} for code in codes}


CONFLICT = responses(409)


UNION_TAGS = {"str", "int", "float", "bool", "none", "list", "dict"}


def _field(loc: tuple) -> str | None:
    """The field a problem is about, dotted; a union's member tags (``changes.rooms.float``) are dropped."""
    parts = [str(p) for p in (loc[1:] if loc and loc[0] in LOCATIONS else loc)]
    while parts and (parts[-1] in UNION_TAGS or "[" in parts[-1]):
        parts.pop()
    return ".".join(parts) or None


def problems(exc: RequestValidationError) -> list[FieldProblem]:
    """The validation's problems as (field, message), one per field, without echoing the input back.
    A value refused by every member of a union (str | int | float ...) is told by its most telling
    message ("Input should be a finite number" over "Input should be a valid string")."""
    by_field: dict[str | None, list[str]] = {}
    for e in exc.errors():
        if e.get("type") == "json_invalid":  # the loc is a character position, not a field
            by_field.setdefault(None, []).append("the body is not valid JSON")
            continue
        by_field.setdefault(_field(tuple(e.get("loc", ()))), []).append(str(e.get("msg", "is invalid")))
    out = []
    for name, messages in by_field.items():
        telling = [m for m in messages if not m.startswith("Input should be a valid")] or messages
        out.append(FieldProblem(field=name, message="; ".join(dict.fromkeys(telling))))
    return out


def _validation_body(exc: RequestValidationError) -> ErrorBody:
    found = problems(exc)
    detail = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in found) or "the request is invalid"
    return ErrorBody(detail=detail, field=found[0].field if found else None, errors=found)


def install(app: FastAPI, page: Callable[[Request, str, int], Response] | None = None) -> None:
    """Install the handlers (call after every router is included) and document each route's errors.
    ``page`` renders a web page's refusal of a bad address (status 400 or 404)."""

    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        path = request.url.path
        if path.startswith(API_PREFIX):
            return JSONResponse(_validation_body(exc).model_dump(), status_code=422)
        if page is not None and not path.startswith("/dci"):
            body = _validation_body(exc)
            return page(request, body.detail, 400)
        return await request_validation_exception_handler(request, exc)

    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith(API_PREFIX):
            detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
            return JSONResponse(ErrorBody(detail=detail).model_dump(), status_code=exc.status_code,
                                headers=getattr(exc, "headers", None))
        return await http_exception_handler(request, exc)

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    document(app)


def _codes(op: dict) -> set[int]:
    """The error codes an operation can answer, read from what the OpenAPI says it takes: a bearer
    token (401, and 403 for a role or district that may not), parameters or a body (422), a record
    named in the path (404), and any code the route declared itself (409)."""
    codes = {int(c) for c in op.get("responses", {}) if str(c).isdigit() and int(c) >= 400}
    params = op.get("parameters", [])
    if op.get("security"):
        codes |= {401, 403}
    if params or op.get("requestBody"):
        codes.add(422)
    if any(p.get("in") == "path" for p in params):
        codes.add(404)
    return codes


def document(app: FastAPI) -> None:
    """Make the OpenAPI list, for every /api/v1 operation, the errors it can return, each with the
    :class:`ErrorBody` schema (FastAPI's own 422 shape is not what these routes answer)."""
    plain = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = plain()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        own = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(own.pop("$defs", {}))
        components["ErrorBody"] = own
        for path, ops in schema.get("paths", {}).items():
            if not path.startswith(API_PREFIX):
                continue
            for op in ops.values():
                answers = op.setdefault("responses", {})
                for code in sorted(_codes(op)):
                    entry = answers.setdefault(str(code), {})
                    if entry.get("description") in (None, "", "Validation Error"):
                        entry["description"] = DESCRIPTIONS.get(code, "Error")
                    entry["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape, now unused by /api/v1
            if name in components and f"#/components/schemas/{name}\"" not in json.dumps(schema):
                components.pop(name)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
