"""Request-scoped dependencies: one database session (one transaction) per request, and
the signed-in principal from a bearer token or the web session cookie."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from isps.access.service import AuthError, Principal, Tokens
from isps.db import session_factory

bearer = HTTPBearer(auto_error=False)
SESSION_COOKIE = "isps_session"


def db_session(request: Request) -> Iterator[Session]:
    factory = request.app.state.session_factory
    with factory() as session:
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise


def tokens(request: Request) -> Tokens:
    return request.app.state.tokens


def api_principal(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer),
                  session: Session = Depends(db_session)) -> Principal:
    token = creds.credentials if creds else request.cookies.get(SESSION_COOKIE)
    if not token:
        raise HTTPException(401, "sign in first: send 'Authorization: Bearer <token>' from POST /api/v1/auth/token",
                            headers={"WWW-Authenticate": "Bearer"})
    try:
        return tokens(request).principal(session, token)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None


def require(permission: str):
    async def check(principal: Principal = Depends(api_principal)) -> Principal:  # no I/O: no worker thread
        if not principal.can(permission):
            raise HTTPException(403, f"your role ({principal.role}) may not do this")
        return principal
    return check


__all__ = ["db_session", "api_principal", "require", "session_factory", "SESSION_COOKIE"]
