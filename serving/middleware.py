"""ASGI middleware of the service.

- ``BearerTokenMiddleware``: optional auth; with ``SERVE_API_TOKEN`` set every API call and ``/metrics`` must carry
  ``Authorization: Bearer <token>`` (the scheme in any case); health, readiness and the API docs stay open, and
  non-HTTP connections (websockets) are closed.
- ``BodyLimitMiddleware``: a request body over ``SERVE_MAX_BODY_BYTES`` gets a 413 before it is parsed.
- ``UnavailableMessageMiddleware``: BentoML answers every 5xx with a generic "unexpected error"; a 503 raised
  through ``unavailable(message)`` (a dependency down) gets its message in the body instead.
- ``JsonBodyMiddleware``: a POST must say its body is JSON; anything else (no Content-Type included) gets a 415
  (BentoML answers a malformed ``multipart/form-data`` with a 500 otherwise).
- ``tracing_config``: keeps BentoML's tracing middleware off the request path unless traces are wanted.
- ``access_log_config``: BentoML's per-request access log, off unless ``SERVE_ACCESS_LOG`` turns it on.
"""

from __future__ import annotations

import contextvars
import hmac
import json

from bentoml.exceptions import ServiceUnavailable

OPEN_PATHS = ("/healthz", "/livez", "/readyz", "/docs", "/docs.json", "/", "/favicon.ico")  # without a token


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
    """415 for a POST whose Content-Type is not application/json, or missing."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("method") == "POST":
            content_type = dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().lower()
            if content_type != b"application/json":
                given = f"Content-Type {content_type.decode(errors='replace')!r}" if content_type else "no Content-Type"
                return await _answer(
                    send, 415, f"unsupported {given}: send the request body as JSON (Content-Type: application/json)"
                )
        return await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 for a request body over ``limit`` bytes: by its Content-Length before anything is read, or (chunked) as
    soon as the bytes read pass the limit; the app then gets the body it would have read."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    DRAIN_FACTOR = 4  # an over-long body is read and dropped up to this many limits, so the client gets the 413

    async def _too_large(self, receive, send, more: bool = True) -> None:
        """Read the rest of the body without keeping it (a client still sending would otherwise see the connection
        reset instead of the answer; past ``DRAIN_FACTOR`` limits the server stops reading), then answer 413."""
        drained = 0
        while more and drained <= self.DRAIN_FACTOR * self.limit:
            message = await receive()
            if message["type"] != "http.request":
                break
            drained += len(message.get("body", b""))
            more = message.get("more_body", False)
        await _answer(
            send, 413, f"request body larger than {self.limit:,} bytes (SERVE_MAX_BODY_BYTES): send fewer events"
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(receive, send)  # refused before anything is parsed or kept
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return await self.app(scope, _replay([message]), send)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                chunks.clear()
                return await self._too_large(receive, send, more)
        body = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
        return await self.app(scope, _replay(body, receive), send)


def _replay(messages: list[dict], then=None):
    """A receive() that gives ``messages`` first, then waits on ``then`` (disconnects arrive there)."""
    pending = list(messages)

    async def receive():
        if pending:
            return pending.pop(0)
        return await then() if then is not None else {"type": "http.disconnect"}

    return receive


class BearerTokenMiddleware:
    """ASGI middleware: 401 with a readable JSON message unless the request carries the token."""

    def __init__(self, app, token: str):
        self.app = app
        self.expected = token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":  # the service speaks HTTP only: refuse before accepting
            return await send({"type": "websocket.close", "code": 1008})
        if scope["type"] != "http" or scope.get("path", "") in OPEN_PATHS or scope.get("method") == "OPTIONS":
            return await self.app(scope, receive, send)  # lifespan, and the open paths
        scheme, _, given = dict(scope.get("headers") or []).get(b"authorization", b"").strip().partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.expected):
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
