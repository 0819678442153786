"""The HTTP aggregator gateway: each message is a JSON POST to the aggregator's API with a bearer
token (``ISPS_SMS_HTTP_URL``, ``ISPS_SMS_HTTP_TOKEN``), carrying an ``Idempotency-Key`` so that an
aggregator that supports it never sends one message twice. The aggregator answers with its id for
the message; its delivery receipts and citizens' texts come back to ``/api/v1/sms/receipts`` and
``/api/v1/sms/inbound`` (authenticated by the shared secret header, see :mod:`isps.api.sms`).

Outcomes: 2xx with an id → sent; 429 and 5xx, or no connection → temporary (retried); any other
4xx → permanent; a time-out after the request was written → uncertain (never retried blindly).
"""

from __future__ import annotations

import httpx

from isps.messaging.gateways import SHORT_CODE, GatewayError, OnReceipt, OnText


class HttpGateway:
    name = "http"

    def __init__(self, url: str, token: str, *, sender: str = SHORT_CODE, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError("ISPS_SMS_HTTP_URL must be an http(s) address")
        self.url, self.sender = url, sender
        self._client = httpx.Client(timeout=timeout, transport=transport,
                                    headers={"Authorization": f"Bearer {token}", "User-Agent": "ISPS-SMS/1"})

    @classmethod
    def from_env(cls, env) -> HttpGateway:
        missing = [k for k in ("ISPS_SMS_HTTP_URL", "ISPS_SMS_HTTP_TOKEN") if not env.get(k)]
        if missing:
            raise ValueError(f"the HTTP SMS gateway needs {', '.join(missing)}")
        return cls(env["ISPS_SMS_HTTP_URL"], env["ISPS_SMS_HTTP_TOKEN"])

    def send(self, message_id: int, phone: str, text: str) -> str:
        body = {"from": self.sender, "to": phone, "text": text, "reference": str(message_id)}
        try:
            r = self._client.post(self.url, json=body, headers={"Idempotency-Key": f"isps-sms-{message_id}"})
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise GatewayError(f"cannot reach the SMS aggregator: {type(exc).__name__}", temporary=True) from None
        except httpx.HTTPError as exc:  # written, then no answer: it may have been taken
            raise GatewayError(f"no answer from the SMS aggregator: {type(exc).__name__}", temporary=True,
                               uncertain=True) from None
        if r.status_code == 429 or r.status_code >= 500:
            raise GatewayError(f"the SMS aggregator answered {r.status_code}", temporary=True)
        if r.status_code >= 400:
            raise GatewayError(f"the SMS aggregator refused the message ({r.status_code}): {r.text[:100]}",
                               temporary=False)
        try:
            ref = r.json().get("id")
        except (ValueError, AttributeError):
            ref = None
        if not ref:
            raise GatewayError("the SMS aggregator took the message without giving its id", temporary=False,
                               uncertain=True)
        return str(ref)

    def start(self, on_text: OnText, on_receipt: OnReceipt) -> None:
        return None  # the aggregator calls ISPS back over HTTP

    def close(self) -> None:
        self._client.close()
