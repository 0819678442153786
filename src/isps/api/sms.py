"""/api/v1/sms: the HTTP SMS aggregator calls ISPS back with delivery receipts and citizens' texts.

Both routes are authenticated by the shared secret in the ``X-ISPS-SMS-Secret`` header
(``ISPS_SMS_HTTP_SECRET``, compared in constant time; never in the address). A text is stored and
answered as the SMPP gateway's are (:func:`isps.messaging.inbound.receive` with the short code's
handler); its reply is sent right after the response, through the configured gateway.
"""

from __future__ import annotations

import hmac
import logging
import os
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from isps.api.deps import DB
from isps.api.errors import responses
from isps.messaging import dispatch, inbound
from isps.messaging.gateways import from_env
from isps.services import sms as shortcode

router = APIRouter(prefix="/api/v1/sms", tags=["sms"])
SECRET_HEADER = "X-ISPS-SMS-Secret"
STATES = {"delivered": "delivered", "delivrd": "delivered", "undeliverable": "undeliverable",
          "undeliv": "undeliverable", "failed": "undeliverable", "rejectd": "undeliverable",
          "rejected": "undeliverable", "expired": "undeliverable"}
log = logging.getLogger(__name__)


def aggregator(x_isps_sms_secret: Annotated[str | None, Header(alias=SECRET_HEADER)] = None) -> None:
    expected = os.environ.get("ISPS_SMS_HTTP_SECRET", "")
    if not expected:
        # refused like a wrong secret (never a 5xx): nobody may call back until a secret is set
        raise HTTPException(401, "the SMS callback is not configured on this server (ISPS_SMS_HTTP_SECRET)")
    if not x_isps_sms_secret or not hmac.compare_digest(x_isps_sms_secret.encode(), expected.encode()):
        raise HTTPException(401, f"the {SECRET_HEADER} header is missing or wrong")


Aggregator = Depends(aggregator)


class ReceiptIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=64, description="the aggregator's id of the message")
    status: str = Field(min_length=1, max_length=20, description="delivered or undeliverable (DELIVRD, UNDELIV…)")
    at: datetime | None = None


class InboundIn(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    sender: str = Field(alias="from", min_length=1, max_length=30, description="the citizen's phone")
    text: str = Field(max_length=1600)
    id: str = Field(min_length=1, max_length=80, description="the aggregator's id of this text")
    at: datetime | None = None


@router.post("/receipts", dependencies=[Aggregator], responses=responses(401, 422))
def receipt(body: ReceiptIn, session: DB) -> dict:
    """A delivery receipt: the message the aggregator knows as ``id`` was delivered or not."""
    state = STATES.get(body.status.strip().lower())
    if state is None:
        raise HTTPException(422, f"status must be delivered or undeliverable, not {body.status[:20]!r}")
    changed = dispatch.record_receipt(session, body.id, state, body.at or datetime.now())
    session.commit()
    return {"id": body.id, "state": state, "messages": changed}


def _send_reply(engine, gateway_holder, message_id: int) -> None:
    try:
        dispatch.send_one(engine, gateway_holder(), message_id)
    except Exception:  # noqa: BLE001 - the dispatcher's next pass sends it
        log.exception("the reply %s could not be sent at once", message_id)


@router.post("/inbound", dependencies=[Aggregator], responses=responses(401, 422))
def inbound_text(body: InboundIn, request: Request, session: DB, tasks: BackgroundTasks) -> dict:
    """A citizen's text to the short code: stored once (by ``id``), answered, the reply sent at once."""
    result = inbound.receive(session, phone=body.sender, text=body.text, gateway_ref=body.id,
                             received_at=body.at or datetime.now(), handler=shortcode.handler())
    reply = result.reply
    session.commit()
    if reply is not None and reply.status == "queued" and not result.duplicate:
        state = request.app.state

        def gateway():
            if getattr(state, "sms_gateway", None) is None:
                state.sms_gateway = from_env()
            return state.sms_gateway

        tasks.add_task(_send_reply, state.engine, gateway, reply.id)
    return {"inbound_id": result.inbound_id, "outcome": result.outcome, "duplicate": result.duplicate,
            "reply": None if reply is None else {"id": reply.id, "status": reply.status, "text": reply.text}}
