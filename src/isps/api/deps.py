"""Request-scoped dependencies: one database session (one transaction) per request, and
the signed-in principal from a bearer token (or, for reads only, the web session cookie).

Refusals that happen before a route runs (a write with the cookie, a role without the
permission, a forged web form) raise :class:`Refused`; its handler writes the audit record
in a worker thread and answers 403, so the allowed path stays free of extra I/O."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from isps.access.service import AuthError, Principal, Tokens, audit
from isps.db import session_factory

bearer = HTTPBearer(auto_error=False)
SESSION_COOKIE = "isps_session"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOBODY = Principal("anonymous", "unknown", None)


class Refused(Exception):
    """A request refused before its route ran: answered 403 with ``message`` and audited
    (action ``refused``) with ``detail``, naming the user when the session tells who it is."""

    def __init__(self, message: str, detail: str, *, channel: str, who: Principal | None = None,
                 token: str | None = None) -> None:
        super().__init__(message)
        self.message, self.detail, self.channel, self.who, self.token = message, detail, channel, who, token


def _audit_refusal(request: Request, exc: Refused) -> None:
    with request.app.state.session_factory() as session:
        who = exc.who
        if who is None and exc.token:
            try:
                who = tokens(request).principal(session, exc.token)
            except AuthError:
                who = None
        audit(session, who or NOBODY, exc.channel, "refused", "request", outcome="denied", detail=exc.detail)
        session.commit()


async def audit_refusal(request: Request, exc: Refused) -> None:
    """Write the refusal's audit record (in a worker thread: the event loop never waits on the database)."""
    await run_in_threadpool(_audit_refusal, request, exc)


async def refused_handler(request: Request, exc: Refused) -> Response:
    await audit_refusal(request, exc)
    return JSONResponse({"detail": exc.message}, status_code=403)


def db_session(request: Request) -> Iterator[Session]:
    factory = request.app.state.session_factory
    with factory() as session:
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise


# The request's session, committed BEFORE the response is sent (``scope="function"``). FastAPI runs the
# code after a dependency's ``yield`` after the response has gone out unless told otherwise (0.118+): a
# sign-in's redirect then reached the browser before its session row was committed, so the home page it
# asked for next found no session and sent it back to sign in; and a commit that failed after a "saved"
# answer would have lost the change silently. Every route and dependency uses this one ``DB``, so a request
# has one session (FastAPI caches a dependency per request by its function and scope).
DB = Annotated[Session, Depends(db_session, scope="function")]


def tokens(request: Request) -> Tokens:
    return request.app.state.tokens


def api_principal(request: Request, session: DB,
                  creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
    """The caller, from ``Authorization: Bearer``; the web session cookie is accepted for reads
    only (the Swagger UI at /api/docs, opened from a signed-in browser), never for a change: a
    page on another site can make a browser send its cookie, not a bearer header."""
    token = creds.credentials if creds else request.cookies.get(SESSION_COOKIE)
    if creds is None and token and request.method in UNSAFE_METHODS:
        raise Refused("the API takes changes only with 'Authorization: Bearer <token>' from POST /api/v1/auth/token; "
                      "the web session cookie is not accepted for writes",
                      f"refused: {request.method} {request.url.path} sent with the web session cookie instead of "
                      f"a bearer token", channel="api", token=token)
    if not token:
        raise HTTPException(401, "sign in first: send 'Authorization: Bearer <token>' from POST /api/v1/auth/token",
                            headers={"WWW-Authenticate": "Bearer"})
    try:
        return tokens(request).principal(session, token)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None


def client_address(request: Request) -> str:
    """The client's address as the server sees it (behind a reverse proxy, run the server with
    ``--proxy-headers`` and ``--forwarded-allow-ips`` so that this is the browser's, not the proxy's)."""
    return request.client.host if request.client else "unknown"


def bearer_token(request: Request) -> str | None:
    """The bearer token of the request, if it came with one."""
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() or None if auth[:7].lower() == "bearer " else None


def require(permission: str):
    async def check(request: Request, principal: Principal = Depends(api_principal)) -> Principal:
        # no I/O when allowed: no worker thread; a refusal is audited by the Refused handler
        if not principal.can(permission):
            raise Refused(f"your role ({principal.role}) may not do this",
                          f"refused: a {principal.role.replace('_', ' ')} may not {request.method} "
                          f"{request.url.path} (needs {permission})", channel="api", who=principal)
        return principal
    return check


__all__ = ["db_session", "api_principal", "require", "session_factory", "SESSION_COOKIE", "Refused",
           "refused_handler", "audit_refusal", "UNSAFE_METHODS", "bearer_token", "client_address"]
