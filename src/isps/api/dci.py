"""/dci: the DCI Social Registry API v1.0.0 (``../shared/specs/dci/social_api_v1.0.0.yaml``).

Partners get a bearer JWT from ``POST /dci/oauth2/client/token`` (OAuth2 client credentials) and
send signed envelopes to the spec's paths under ``/dci``: ``/registry/sync/search``,
``/registry/search`` (answer posted to the partner's ``on-search``), ``/registry/sync/txn/status``,
``/registry/txn/status``, ``/registry/subscribe``, ``/registry/unsubscribe``. Notifications go out
from registry events (:mod:`isps.interop.dci.subscriptions`); ``POST /dci/admin/notify`` runs one
pass for an administrator. The domain work is in :mod:`isps.interop.dci.service`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Callable
from typing import Annotated

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from isps.access.service import Principal, audit
from isps.api import errors
from isps.api.deps import require
from isps.interop.dci import envelope, partners, service, subscriptions
from isps.interop.dci.envelope import DciError
from isps.services import leases
from isps.services.worker import DCI_NOTIFY

router = APIRouter(prefix="/dci", tags=["dci"])
log = logging.getLogger("isps.dci")


def runtime(request: Request) -> service.Runtime:
    state = request.app.state
    rt = getattr(state, "dci", None)
    if rt is None:
        secret = state.tokens._s.secret_keys[-1]  # the server secret; DCI keys are derived from it
        rt = service.Runtime(secret.decode() if isinstance(secret, bytes) else str(secret),
                             token_ttl_s=getattr(state, "dci_token_ttl_s", 3600))
        state.dci = rt
    sender = getattr(state, "dci_sender", None)
    if sender is not None:
        rt.sender = sender
    return rt


def _process(request: Request, raw: bytes, authorization: str | None, path: str, action: str,
             handler: Callable) -> service.Reply:
    rt = runtime(request)
    factory = request.app.state.session_factory
    with factory() as session:
        actor, partner = "anonymous", None
        try:
            partner = service.authenticate(session, rt, authorization)
            actor = partner.sender_id
            env = envelope.parse(raw, path, rt.isps_id)
            service.check_message(session, partner, env)
            reply = handler(session, rt, partner, env, factory)
            if not reply.audited:
                service.audit_request(session, actor, action, "ok", reply.detail, partner)
            session.commit()
            return reply
        except DciError as exc:
            session.rollback()
            service.audit_request(session, actor, action, "denied", f"{exc.code}: {exc.message}", partner)
            session.commit()
            if path in SYNC_ACTIONS and exc.http_status not in (401, 403):
                header, error = exc.sync_header(rt.isps_id, actor, SYNC_ACTIONS[path])
                return service.Reply(exc.http_status, {**rt.envelope(header, None), "error": error})
            return service.Reply(exc.http_status, exc.body())
        except Exception as exc:  # noqa: BLE001 - the spec's 500, never a traceback to the partner
            session.rollback()
            log.exception("dci %s failed (%s)", action, type(exc).__name__)
            return service.Reply(500, {"errors": [{"code": "err.service.unavailable",
                                                   "message": "the registry could not process this request"}]})


SYNC_ACTIONS = {"/registry/sync/search": "on-search", "/registry/sync/txn/status": "txn-on-status"}

# Threads that may work on DCI requests at once, per process. Each holds a database connection for
# its request, so this stays under the pool's size (db.py: 10 per process): more threads only queue
# on the pool (or open and close overflow connections) and fight over the GIL, which stretches
# every request. Requests beyond it wait their turn in the event loop.
DCI_THREADS = int(os.environ.get("ISPS_DCI_THREADS", "8"))


def _limiter(request: Request) -> CapacityLimiter:
    state = request.app.state
    loop = asyncio.get_running_loop()
    held = getattr(state, "dci_limiter", None)
    if held is None or held[0] is not loop:
        held = (loop, CapacityLimiter(DCI_THREADS))
        state.dci_limiter = held
    return held[1]


def _endpoint(path: str, action: str, handler: Callable):
    async def endpoint(request: Request) -> JSONResponse:
        raw = await request.body()
        reply = await anyio.to_thread.run_sync(_process, request, raw, request.headers.get("authorization"), path,
                                               action, handler, limiter=_limiter(request))
        # a callback (async endpoints) goes out after the acknowledgement has been sent
        background = BackgroundTask(_safe, reply.followup) if reply.followup is not None else None
        return JSONResponse(reply.body, status_code=reply.status, background=background)
    endpoint.__name__ = action.replace(".", "_")
    return endpoint


def _safe(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - a failed callback is logged and left for retry
        log.exception("dci callback failed (%s)", type(exc).__name__)


def _sync(fn):
    return lambda session, rt, partner, env, factory: fn(session, rt, partner, env)


ROUTES = [
    ("/registry/sync/search", "dci.sync_search", _sync(service.sync_search), "Sync search (by CNIC/B-form, predicate or expression)"),
    ("/registry/search", "dci.search", service.async_search, "Async search; results go to the partner's on-search"),
    ("/registry/sync/txn/status", "dci.sync_txn_status", _sync(service.sync_txn_status), "Transaction status (sync)"),
    ("/registry/txn/status", "dci.txn_status", service.async_txn_status, "Transaction status; answer to txn/on-status"),
    ("/registry/subscribe", "dci.subscribe", service.subscribe, "Subscribe to registry events; answer to on-subscribe"),
    ("/registry/unsubscribe", "dci.unsubscribe", service.unsubscribe, "End subscriptions; answer to on-unsubscribe"),
]
for _path, _action, _handler, _summary in ROUTES:
    router.add_api_route(_path, _endpoint(_path, _action, _handler), methods=["POST"], summary=_summary,
                         response_class=JSONResponse)


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request) -> dict:
    """The DCI spec (v1.0.0) of the operations served here, with this server's /dci as its base URL."""
    return envelope.served_spec([path for path, *_ in ROUTES], str(request.base_url).rstrip("/") + "/dci")


@router.post("/oauth2/client/token", summary="OAuth2 client credentials: a bearer JWT signed by ISPS")
async def token(request: Request) -> JSONResponse:
    form = await request.form()
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
    if form.get("grant_type") != "client_credentials":
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
    if not client_id or not client_secret:
        return JSONResponse({"error": "invalid_request", "error_description": "client_id and client_secret"}, 400)

    def issue() -> JSONResponse:
        rt = runtime(request)
        with request.app.state.session_factory() as session:
            try:
                partner = rt.tokens.authenticate(session, str(client_id), str(client_secret))
            except partners.TokenError as exc:
                service.audit_request(session, "anonymous", "dci.token", "denied", str(exc))
                session.commit()
                return JSONResponse({"error": "invalid_client"}, status_code=401,
                                    headers={"WWW-Authenticate": "Basic"})
            jwt_token, ttl = rt.tokens.issue(partner)
            service.audit_request(session, partner.sender_id, "dci.token", "ok",
                                  ("test partner: " if partner.test_partner else "") + "token issued")
            session.commit()
        return JSONResponse({"access_token": jwt_token, "token_type": "Bearer", "expires_in": ttl, "scope": "dci"},
                            headers={"Cache-Control": "no-store"})
    return await run_in_threadpool(issue)


@router.get("/.well-known/jwks.json", summary="ISPS public keys: token signing and message signing")
def jwks(request: Request) -> dict:
    from cryptography.hazmat.primitives import serialization

    rt = runtime(request)

    def jwk(key, kid: str, use: str) -> dict:
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": use, "alg": "EdDSA",
                "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}
    return {"keys": [jwk(rt.tokens.key, "isps-oauth2-1", "sig"), jwk(rt.signing_key, rt.key_id, "sig")],
            "sender_id": rt.isps_id}


NOTIFY_WAIT = 2.0  # seconds a notify request waits for the worker's run of the notifier to end


@router.post("/admin/notify", summary="Send notifications for registry events past the DCI cursor (administrator)",
             responses=errors.CONFLICT)
def notify_now(request: Request, who: Annotated[Principal, Depends(require("users.manage"))]) -> dict:
    """One notifier pass now, under the worker's ``dci_notify`` lease (never two passes at once:
    409 while the worker's run holds it)."""
    rt = runtime(request)
    try:
        with leases.held(request.app.state.engine, DCI_NOTIFY, wait=NOTIFY_WAIT, holder=leases.new_holder("api")):
            with request.app.state.session_factory() as session:
                counts = subscriptions.process_events(session, rt)
                service.retry_failed(session, rt)
                audit(session, who, "api", "notify", "dci_subscription",
                      detail="sent notifications for registry events: "
                      + (", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
                         if isinstance(counts, dict) else str(counts)))
                session.commit()
    except leases.Busy:
        return JSONResponse(errors.ErrorBody(
            detail=f"the DCI notifier is running now (the worker's {DCI_NOTIFY} task): try again in a minute"
        ).model_dump(), status_code=409)
    return counts
