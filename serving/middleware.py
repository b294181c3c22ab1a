"""ASGI middleware of the service.

- ``BearerTokenMiddleware``: optional auth; with ``SERVE_API_TOKEN`` set every API call must carry
  ``Authorization: Bearer <token>``; health, readiness, metrics and the API docs stay open.
- ``UnavailableMessageMiddleware``: BentoML answers every 5xx with a generic "unexpected error"; a 503 raised
  through ``unavailable(message)`` (a dependency down) gets its message in the body instead.
- ``JsonBodyMiddleware``: a request body must be JSON; anything else gets a 415 with a message
  (BentoML answers a malformed ``multipart/form-data`` with a 500 otherwise).
- ``tracing_config``: keeps BentoML's tracing middleware off the request path unless traces are wanted.
- ``access_log_config``: BentoML's per-request access log, off unless ``SERVE_ACCESS_LOG`` turns it on.
"""

from __future__ import annotations

import contextvars
import hmac
import json

from bentoml.exceptions import ServiceUnavailable

OPEN_PATHS = ("/healthz", "/livez", "/readyz", "/metrics", "/docs", "/docs.json", "/", "/favicon.ico")


async def _answer(send, status: int, message: str, extra_headers: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(extra_headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


# One mutable box per request: the endpoint (in the request's task, or a thread that copied its context) puts
# the message in; the middleware reads it when the 503 goes out.
_UNAVAILABLE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("unavailable_message", default=None)


def unavailable(message: str) -> ServiceUnavailable:
    """A 503 to raise whose ``message`` reaches the client (see ``UnavailableMessageMiddleware``)."""
    box = _UNAVAILABLE.get()
    if box is not None:
        box["message"] = message
    return ServiceUnavailable(message)


class UnavailableMessageMiddleware:
    """Replace the body of a 503 raised with ``unavailable(message)`` by ``{"error": message}``."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        box: dict = {}
        token = _UNAVAILABLE.set(box)

        async def send_with_message(message):
            if message["type"] == "http.response.start" and message["status"] == 503 and "message" in box:
                box["body"] = json.dumps({"error": box["message"]}).encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
                message = {**message, "headers": [*headers, (b"content-length", str(len(box["body"])).encode())]}
            elif message["type"] == "http.response.body" and "body" in box:
                if box.get("sent"):
                    return
                box["sent"] = True
                message = {"type": "http.response.body", "body": box["body"]}
            await send(message)

        try:
            return await self.app(scope, receive, send_with_message)
        finally:
            _UNAVAILABLE.reset(token)


class JsonBodyMiddleware:
    """415 for a POST whose Content-Type is set and is not application/json."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("method") == "POST":
            content_type = dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().lower()
            if content_type and content_type != b"application/json":
                return await _answer(
                    send,
                    415,
                    f"unsupported Content-Type {content_type.decode(errors='replace')!r}: "
                    "send the request body as JSON (Content-Type: application/json)",
                )
        return await self.app(scope, receive, send)


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
        await _answer(
            send,
            401,
            "missing or wrong bearer token: send the header "
            "'Authorization: Bearer <token>' (the token is SERVE_API_TOKEN)",
            [(b"www-authenticate", b"Bearer")],
        )


def tracing_config(sample_rate: str | None) -> dict:
    """BentoML's tracing settings for SERVE_TRACING_SAMPLE_RATE (0..1, default 0).

    At BentoML's default sample rate 0 no trace is kept, yet its OpenTelemetry middleware still makes
    non-recording spans for every request: ~0.25 ms of the ~1.1 ms /recommend spends in process (docs/benchmarks.md,
    serving). So unless a rate above 0 asks for traces (exported as BentoML's configuration says), every
    path is excluded from that middleware; the one thing lost is the X-BentoML-Request-ID header."""
    try:
        rate = float(sample_rate or 0)
    except ValueError:
        raise ValueError(f"SERVE_TRACING_SAMPLE_RATE must be a number from 0 to 1, got {sample_rate!r}") from None
    if not 0 <= rate <= 1:
        raise ValueError(f"SERVE_TRACING_SAMPLE_RATE must be a number from 0 to 1, got {sample_rate!r}")
    return {"sample_rate": rate} if rate > 0 else {"excluded_urls": [".*"]}


def access_log_config(value: str | None) -> dict:
    """BentoML's access-log settings for SERVE_ACCESS_LOG (default off; 1/true/yes/on turn it on).

    BentoML logs a line for every request by default: ~0.04 ms of the ~1 ms a /recommend takes at
    concurrency 1 (docs/benchmarks.md, serving). Request counts and latencies per endpoint stay in /metrics, and every
    recommendation is kept in the prediction log (interest_decay.monitoring.prediction_log), so the line is opt-in."""
    text = (value or "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return {"enabled": False}
    if text in ("1", "true", "yes", "on"):
        return {"enabled": True}
    raise ValueError(f"SERVE_ACCESS_LOG must be 1/true/yes/on or 0/false/no/off, got {value!r}")
