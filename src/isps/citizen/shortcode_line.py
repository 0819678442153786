"""The short code on the air: a gateway's inbound texts stored and answered by
:func:`isps.citizen.shortcode.answer` through :func:`isps.messaging.inbound.receive` (rate limit,
STOP/START), each reply sent at once (:func:`isps.messaging.dispatch.send_one`), delivery receipts
recorded. One transaction per text; the gateway calls back on its own threads.

``isps worker`` (or a test, or the round-trip benchmark) starts it with a gateway; when the reply
cannot be sent at once it stays queued and the worker's sending pass retries it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Engine

from isps.citizen.shortcode import answer
from isps.db import transaction
from isps.messaging import dispatch, inbound
from isps.messaging.gateways import Gateway

log = logging.getLogger(__name__)


class ShortCode:
    def __init__(self, engine: Engine, gateway: Gateway) -> None:
        self.engine, self.gateway = engine, gateway
        self.answered = 0

    @classmethod
    def over_smpp(cls, engine: Engine, host: str, port: int, system_id: str, password: str, **options) -> ShortCode:
        """Bound to an SMSC as a transceiver, listening."""
        from isps.messaging.gateways.smpp import SmppGateway

        line = cls(engine, SmppGateway(host, port, system_id, password, **options))
        line.start()
        return line

    def start(self) -> None:
        self.gateway.start(self.on_text, self.on_receipt)

    def on_text(self, phone: str, text: str, gateway_ref: str, received_at: datetime) -> None:
        with transaction(self.engine) as s:
            result = inbound.receive(s, phone=phone, text=text, gateway_ref=gateway_ref, received_at=received_at,
                                     handler=answer)
            reply_id = result.reply.id if result.reply is not None and not result.duplicate else None
        if reply_id is not None:
            dispatch.send_one(self.engine, self.gateway, reply_id)
            self.answered += 1

    def on_receipt(self, gateway_id: str, state: str, at: datetime) -> None:
        with transaction(self.engine) as s:
            dispatch.record_receipt(s, gateway_id, state, at)

    def close(self) -> None:
        self.gateway.close()
