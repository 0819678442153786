"""Security headers on every response, as a pure ASGI middleware (no BaseHTTPMiddleware: that
costs every request a task and a copy of the body).

Every response says ``nosniff``, may not be framed, and sends the referrer only to this site;
everything but the static files is ``Cache-Control: no-store``, because the API, DCI and web pages
carry CNICs, names and phones that no shared or browser cache may keep. A header the route set
itself (the web pages' Content-Security-Policy) is left as it is.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "frame-ancestors 'none'",
}
PERSONAL = {"Cache-Control": "no-store"}


class SecurityHeaders:
    def __init__(self, app: ASGIApp, public_prefixes: tuple[str, ...] = ("/static/",)) -> None:
        self.app = app
        self.public_prefixes = public_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = ALWAYS if scope["path"].startswith(self.public_prefixes) else {**ALWAYS, **PERSONAL}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
