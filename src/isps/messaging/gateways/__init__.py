"""SMS gateways: what carries a message to a phone and brings texts and delivery receipts back.

Every gateway has the same face (:class:`Gateway`): ``send`` hands one message over and returns
the gateway's id for it (the key of its delivery receipt) or raises :class:`GatewayError`
(``temporary`` says whether trying again later may work); ``start`` begins listening, calling
``on_text(phone, text, gateway_ref, received_at)`` for each text a citizen sends and
``on_receipt(gateway_id, state, at)`` (state ``delivered`` or ``undeliverable``) for each
receipt; ``close`` stops it. :func:`from_env` picks one by ``ISPS_SMS_GATEWAY``:

* ``file`` (default): appends each message as a JSON line to ``var/sms-outbox.jsonl``
  (``ISPS_SMS_OUTBOX``; ``var`` is ``ISPS_VAR_DIR``); inbound texts come from ``isps sms receive``.
* ``smpp``: an SMPP 3.4 transceiver (``ISPS_SMPP_HOST``, ``_PORT``, ``_SYSTEM_ID``, ``_PASSWORD``,
  ``_SOURCE_ADDR``), see :mod:`isps.messaging.gateways.smpp`.
* ``http``: an aggregator's JSON API (``ISPS_SMS_HTTP_URL``, ``ISPS_SMS_HTTP_TOKEN``); its
  receipts and inbound texts arrive at ``/api/v1/sms/receipts`` and ``/api/v1/sms/inbound``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

OnText = Callable[[str, str, str, datetime], None]       # phone, text, gateway_ref, received_at
OnReceipt = Callable[[str, str, datetime], None]        # gateway message id, delivered | undeliverable, at
SHORT_CODE = "8123"                                       # ISPS's short code (BISP's is 8171)


class GatewayError(Exception):
    """The gateway did not take the message. ``temporary``: it may take it later (throttled, not
    connected, timed out before any answer); otherwise it never will (a number it refuses)."""

    def __init__(self, message: str, *, temporary: bool, uncertain: bool = False) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.uncertain = uncertain  # the message was handed over but no answer came: it may have been taken


class Gateway(Protocol):
    name: str

    def send(self, message_id: int, phone: str, text: str) -> str: ...

    def start(self, on_text: OnText, on_receipt: OnReceipt) -> None: ...

    def close(self) -> None: ...


def from_env(env: dict | None = None) -> Gateway:
    """The gateway ``ISPS_SMS_GATEWAY`` names (``file`` when unset), configured from the environment."""
    env = os.environ if env is None else env
    kind = (env.get("ISPS_SMS_GATEWAY") or "file").strip().lower()
    if kind == "file":
        from isps.messaging.gateways.file import FileGateway

        return FileGateway(env.get("ISPS_SMS_OUTBOX")
                           or os.path.join(env.get("ISPS_VAR_DIR") or "var", "sms-outbox.jsonl"))
    if kind == "smpp":
        from isps.messaging.gateways.smpp import SmppGateway

        return SmppGateway.from_env(env)
    if kind == "http":
        from isps.messaging.gateways.http import HttpGateway

        return HttpGateway.from_env(env)
    raise ValueError(f"ISPS_SMS_GATEWAY must be file, smpp or http, not {kind!r}")


__all__ = ["Gateway", "GatewayError", "OnText", "OnReceipt", "from_env", "SHORT_CODE"]
