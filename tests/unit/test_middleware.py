"""The service's middleware: the bearer token lets the right token and open paths through, nothing
else; request bodies must be JSON; BentoML's tracing middleware is skipped unless traces are wanted; its access
log is off unless SERVE_ACCESS_LOG turns it on."""

import asyncio
import json

import pytest

from serving.middleware import (
    BearerTokenMiddleware,
    BodyLimitMiddleware,
    JsonBodyMiddleware,
    access_log_config,
    tracing_config,
)


def call(path: str, headers: list[tuple[bytes, bytes]], middleware=None):
    reached, sent = [], []

    async def app(scope, receive, send):
        reached.append(scope["path"])

    async def send(message):
        sent.append(message)

    middleware = (middleware or (lambda inner: BearerTokenMiddleware(inner, token="s3cret")))(app)
    asyncio.run(middleware({"type": "http", "path": path, "method": "POST", "headers": headers}, None, send))
    return reached, sent


@pytest.mark.parametrize("headers", [[], [(b"authorization", b"Bearer wrong")], [(b"authorization", b"s3cret")]])
def test_wrong_or_missing_token_gets_401_with_a_message(headers):
    reached, sent = call("/recommend", headers)
    assert reached == [] and sent[0]["status"] == 401
    assert "Authorization: Bearer" in json.loads(sent[1]["body"])["error"]


def test_right_token_and_open_paths_pass():
    assert call("/recommend", [(b"authorization", b"Bearer s3cret")])[0] == ["/recommend"]
    assert call("/recommend", [(b"authorization", b"bearer s3cret")])[0] == ["/recommend"]  # scheme in any case
    assert call("/recommend", [(b"authorization", b"BEARER  s3cret ")])[0] == ["/recommend"]
    assert call("/readyz", [])[0] == ["/readyz"]


def test_metrics_need_the_token_and_websockets_are_closed():
    assert call("/metrics", [])[1][0]["status"] == 401
    assert call("/metrics", [(b"authorization", b"Bearer s3cret")])[0] == ["/metrics"]
    reached, sent = [], []

    async def app(scope, receive, send):
        reached.append(scope["type"])

    async def send(message):
        sent.append(message)

    middleware = BearerTokenMiddleware(app, token="s3cret")
    asyncio.run(middleware({"type": "websocket", "path": "/recommend", "headers": []}, None, send))
    assert reached == [] and sent == [{"type": "websocket.close", "code": 1008}]
    asyncio.run(middleware({"type": "lifespan"}, None, send))  # start-up and shut-down still reach the app
    assert reached == ["lifespan"]


def body_call(chunks: list[bytes], limit: int, declared: int | None = None):
    """Send ``chunks`` through BodyLimitMiddleware; returns (the body the app read, what was sent back)."""
    read, sent = [], []
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def app(scope, receive, send):
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        read.append(body)

    async def send(message):
        sent.append(message)

    headers = [(b"content-length", str(declared).encode())] if declared is not None else []
    scope = {"type": "http", "path": "/events", "method": "POST", "headers": headers}
    asyncio.run(BodyLimitMiddleware(app, limit=limit)(scope, receive, send))
    return read, sent


def test_a_body_over_the_limit_gets_413_before_the_app_reads_it():
    read, sent = body_call([b"x" * 10], limit=100, declared=20_000_000)  # refused by its Content-Length
    assert read == [] and sent[0]["status"] == 413
    assert "SERVE_MAX_BODY_BYTES" in json.loads(sent[1]["body"])["error"]
    read, sent = body_call([b"x" * 60, b"x" * 60], limit=100)  # chunked, no length: refused once past the limit
    assert read == [] and sent[0]["status"] == 413


def test_a_body_within_the_limit_reaches_the_app_whole():
    read, sent = body_call([b'{"a": ', b"1}"], limit=100, declared=8)
    assert read == [b'{"a": 1}'] and sent == []


@pytest.mark.parametrize(
    "content_type, passes",
    [
        (b"application/json", True),
        (b"application/json; charset=utf-8", True),
        (None, False),  # a POST that does not say what it sends
        (b"multipart/form-data", False),
        (b"text/plain", False),
    ],
)
def test_only_json_bodies_reach_the_service(content_type, passes):
    headers = [(b"content-type", content_type)] if content_type else []
    reached, sent = call("/recommend", headers, JsonBodyMiddleware)
    assert (reached == ["/recommend"]) is passes
    if not passes:
        assert sent[0]["status"] == 415 and "application/json" in json.loads(sent[1]["body"])["error"]


@pytest.mark.parametrize("rate", [None, "", "0"])
def test_without_a_sample_rate_every_path_skips_the_tracing_middleware(rate):
    from opentelemetry.util.http import ExcludeList  # what BentoML builds from excluded_urls

    config = tracing_config(rate)
    assert "sample_rate" not in config
    excluded = ExcludeList(config["excluded_urls"])
    assert all(excluded.url_disabled(f"http://127.0.0.1:3000{path}") for path in ("/recommend", "/interest", "/readyz"))


def test_a_sample_rate_keeps_tracing_on():
    assert tracing_config("0.25") == {"sample_rate": 0.25}


@pytest.mark.parametrize("rate", ["often", "1.5", "-0.1"])
def test_a_bad_sample_rate_is_a_clear_error(rate):
    with pytest.raises(ValueError, match="SERVE_TRACING_SAMPLE_RATE must be a number from 0 to 1"):
        tracing_config(rate)


@pytest.mark.parametrize("value", [None, "", "0", "false", "No", " off "])
def test_the_access_log_is_off_unless_asked_for(value):
    assert access_log_config(value) == {"enabled": False}


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_serve_access_log_turns_the_access_log_on(value):
    assert access_log_config(value) == {"enabled": True}


@pytest.mark.parametrize("value", ["sometimes", "2", "enabled"])
def test_a_bad_access_log_setting_is_a_clear_error(value):
    with pytest.raises(ValueError, match="SERVE_ACCESS_LOG must be 1/true/yes/on or 0/false/no/off"):
        access_log_config(value)


def run_app(endpoint):
    """An ASGI app that answers like BentoML: a 503 with its generic body when ``endpoint`` (run in a thread,
    as BentoML runs a plain function) raises ServiceUnavailable; else 200."""
    from bentoml.exceptions import ServiceUnavailable

    from serving.middleware import UnavailableMessageMiddleware

    sent = []

    async def app(scope, receive, send):
        try:
            await asyncio.to_thread(endpoint)
            status, body = 200, b"{}"
        except ServiceUnavailable:
            status, body = 503, b'{"error":"An unexpected error has occurred, please check the server log."}'
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-length", b"%d" % len(body))]}
        )
        await send({"type": "http.response.body", "body": body})

    async def send(message):
        sent.append(message)

    asyncio.run(UnavailableMessageMiddleware(app)({"type": "http", "path": "/events"}, None, send))
    return sent


def test_a_503_raised_with_unavailable_carries_its_message_to_the_client():
    from serving.middleware import unavailable

    def database_down():
        raise unavailable("the event database is not reachable")

    start, body = run_app(database_down)
    assert start["status"] == 503 and json.loads(body["body"]) == {"error": "the event database is not reachable"}
    assert dict(start["headers"])[b"content-length"] == str(len(body["body"])).encode()
    start, body = run_app(lambda: None)
    assert start["status"] == 200 and body["body"] == b"{}"
