"""The streaming client against a local HTTP server standing for an account's ingest host, answering what the
embedded Snowflake never does: an open whose channel status code is not SUCCESS, 429s with a Retry-After, 5xx."""

from __future__ import annotations

import json
import time
from typing import AsyncIterator

import pytest
from aiohttp import web

from caves_faust.snowflake.streaming_auth import Credentials
from caves_faust.snowflake.streaming_client import OpenChannel, StreamingClient, StreamingRefused, StreamingUnavailable

PIPE = "/databases/DB/schemas/RAW_DATA/pipes/P"


class Account:
    """The server's routes: hostname and scoped token, and the channel calls the test scripts (`answers`, in turn);
    every channel request is kept (method, path, body)."""

    def __init__(self) -> None:
        self.answers: list[web.Response] = []
        self.requests: list[tuple[str, str, bytes]] = []
        self.port = 0

    async def channel_call(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path, await request.read()))
        return self.answers.pop(0)

    async def hostname(self, request: web.Request) -> web.Response:
        return web.json_response({"hostname": f"127.0.0.1:{self.port}"})

    async def token(self, request: web.Request) -> web.Response:
        return web.json_response({"token": "scoped"})

    def client(self) -> StreamingClient:
        return StreamingClient(Credentials(f"http://127.0.0.1:{self.port}", "http", None), "DB", "RAW_DATA", "P", 5)


@pytest.fixture
async def account() -> AsyncIterator[Account]:
    served = Account()
    app = web.Application()
    app.router.add_get("/v2/streaming/hostname", served.hostname)
    app.router.add_post("/oauth/token", served.token)
    app.router.add_route("*", "/v2/streaming" + PIPE + "/{rest:.*}", served.channel_call)
    app.router.add_route("*", "/v2/streaming/data" + PIPE + "/{rest:.*}", served.channel_call)
    app.router.add_post("/v2/streaming" + PIPE + ":bulk-channel-status", served.channel_call)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    served.port = runner.addresses[0][1]
    try:
        yield served
    finally:
        await runner.cleanup()


def opened(code: str) -> web.Response:
    return web.json_response({"next_continuation_token": "0_1", "channel_status": {
        "channel_name": "C", "channel_status_code": code, "last_committed_offset_token": "41",
        "last_error_message": None if code == "SUCCESS" else "Channel C no longer exists"}})


def throttled(retry_after: str | None = None) -> web.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return web.json_response({"code": "ERR_TOO_MANY_REQUESTS", "message": "slow down"}, status=429, headers=headers)


async def test_an_open_asks_not_to_fail_on_uncommitted_rows_and_refuses_a_status_code_other_than_success(account):
    account.answers = [opened("SUCCESS"), opened("ERR_CHANNEL_NO_LONGER_EXISTS")]
    client = account.client()
    try:
        _, status = await client.open("C")
        with pytest.raises(StreamingRefused, match="ERR_CHANNEL_NO_LONGER_EXISTS.*not 'SUCCESS'"):
            await client.open("C")
    finally:
        await client.close()

    assert status.committed_offset_token == "41"
    assert [json.loads(body) for _, _, body in account.requests] == [{"fail_on_uncommitted_rows": False}] * 2


async def test_a_throttled_request_is_sent_again_the_same_after_the_retry_after_it_was_given(account):
    account.answers = [throttled("0.3"), throttled("0.3"), web.json_response({"channel_statuses": {}})]
    client = account.client()
    started = time.monotonic()
    try:
        assert await client.statuses(["C_0", "C_1"]) == {}
    finally:
        await client.close()

    assert time.monotonic() - started >= 0.6
    assert len({request for request in account.requests}) == 1 and len(account.requests) == 3  # the same, thrice


async def test_an_append_answered_5xx_is_not_sent_again_a_status_is(account):
    account.answers = [web.Response(status=503), web.Response(status=503), web.json_response({"channel_statuses": {}})]
    client = account.client()
    try:
        with pytest.raises(StreamingUnavailable, match="503"):  # it may have been taken: the caller reopens
            await client.append(OpenChannel("C", "0_1"), b'{"A": 1}\n', "1", "1")
        assert await client.statuses(["C"]) == {}  # changes nothing: asked again
    finally:
        await client.close()

    assert [method for method, _, _ in account.requests] == ["POST", "POST", "POST"]
    assert account.requests[0][1].endswith("/rows") and account.requests[2][1].endswith(":bulk-channel-status")
