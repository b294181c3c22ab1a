"""The optional bearer-token middleware lets the right token and open paths through, nothing else."""

import asyncio
import json

import pytest

from serving.auth import BearerTokenMiddleware


def call(path: str, headers: list[tuple[bytes, bytes]]):
    reached, sent = [], []

    async def app(scope, receive, send):
        reached.append(scope["path"])

    async def send(message):
        sent.append(message)

    middleware = BearerTokenMiddleware(app, token="s3cret")
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
