"""The service's middleware: the bearer token lets the right token and open paths through, nothing
else; request bodies must be JSON."""

import asyncio
import json

import pytest

from serving.middleware import BearerTokenMiddleware, JsonBodyMiddleware


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


@pytest.mark.parametrize("content_type, passes", [
    (b"application/json", True), (b"application/json; charset=utf-8", True), (None, True),
    (b"multipart/form-data", False), (b"text/plain", False),
])
def test_only_json_bodies_reach_the_service(content_type, passes):
    headers = [(b"content-type", content_type)] if content_type else []
    reached, sent = call("/recommend", headers, JsonBodyMiddleware)
    assert (reached == ["/recommend"]) is passes
    if not passes:
        assert sent[0]["status"] == 415 and "application/json" in json.loads(sent[1]["body"])["error"]
