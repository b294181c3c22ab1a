"""The service's middleware: the bearer token lets the right token and open paths through, nothing
else; request bodies must be JSON; BentoML's tracing middleware is skipped unless traces are wanted; its access
log is off unless SERVE_ACCESS_LOG turns it on."""

import asyncio
import json

import pytest

from serving.middleware import BearerTokenMiddleware, JsonBodyMiddleware, access_log_config, tracing_config


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
    assert call("/readyz", [])[0] == ["/readyz"]


@pytest.mark.parametrize(
    "content_type, passes",
    [
        (b"application/json", True),
        (b"application/json; charset=utf-8", True),
        (None, True),
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
