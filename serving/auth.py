"""Optional bearer-token auth for the service: set ``SERVE_API_TOKEN`` and every API call must carry
``Authorization: Bearer <token>``; health, readiness, metrics and the API docs stay open."""

from __future__ import annotations

import hmac
import json

OPEN_PATHS = ("/healthz", "/livez", "/readyz", "/metrics", "/docs", "/docs.json", "/", "/favicon.ico")


class BearerTokenMiddleware:
    """ASGI middleware: 401 with a readable JSON message unless the request carries the token."""

    def __init__(self, app, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path", "") in OPEN_PATHS or scope.get("method") == "OPTIONS":
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            return await self.app(scope, receive, send)
        body = json.dumps({"error": "missing or wrong bearer token: send the header "
                                    "'Authorization: Bearer <token>' (the token is SERVE_API_TOKEN)"}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})
