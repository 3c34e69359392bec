"""The key-pair JWT a real account's streaming endpoints expect: Snowflake's claims, signed with the user's key."""

from __future__ import annotations

import base64
import hashlib
import time

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from caves_faust.snowflake.streaming_auth import USER_AGENT, Credentials, KeyPair, _field
from caves_faust.snowflake.streaming_client import StreamingClient


def test_the_jwt_names_the_account_user_and_public_key_fingerprint_and_verifies_with_the_public_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(public_der).digest()).decode()
    now = time.time()

    token = KeyPair("MYORG-CAVES", "CAVES_FAUST", key).jwt(now)

    claims = jwt.decode(token, key.public_key(), algorithms=["RS256"])
    assert claims["iss"] == f"MYORG-CAVES.CAVES_FAUST.{fingerprint}"
    assert claims["sub"] == "MYORG-CAVES.CAVES_FAUST"
    assert claims["iat"] == int(now) and 0 < claims["exp"] - claims["iat"] <= 3600


def test_hostname_and_token_answers_are_read_as_json_or_as_the_bare_value():
    host = "abc.ingest.snowflakecomputing.com"
    assert _field(f'{{"hostname": "{host}"}}', "hostname") == host
    assert _field(f"{host}\n", "hostname") == host
    assert _field('{"token": "t0k"}', "token") == "t0k"


async def test_the_ingest_host_is_used_with_hyphens_in_lower_case_and_every_request_names_the_client():
    """Against a local HTTP server standing for the account: the scope asked for and the calls' host are the host
    name with an account name's `_` as `-`, lower-cased; each request carries the User-Agent."""
    seen: list[tuple[str, str, str]] = []  # (path, user agent, scope asked for)
    returned = {"hostname": "MyOrg_Caves.Ingest.snowflakecomputing.com"}

    async def hostname(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("User-Agent", ""), ""))
        return web.json_response(returned)

    async def token(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("User-Agent", ""), str((await request.post()).get("scope"))))
        return web.json_response({"token": "scoped"})

    async def open_channel(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("User-Agent", ""), ""))
        return web.json_response({"next_continuation_token": "c1", "channel_status": {
            "channel_status_code": "SUCCESS", "last_committed_offset_token": None}})

    app = web.Application()
    app.router.add_get("/v2/streaming/hostname", hostname)
    app.router.add_post("/oauth/token", token)
    app.router.add_put("/v2/streaming/databases/DB/schemas/RAW_DATA/pipes/P/channels/C", open_channel)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        credentials = Credentials(f"http://127.0.0.1:{port}", "http", None)
        async with aiohttp.ClientSession() as session:
            await credentials.renew(session)
        assert credentials.ingest_url == "http://myorg-caves.ingest.snowflakecomputing.com"
        assert seen[1][2] == "myorg-caves.ingest.snowflakecomputing.com"  # the token is scoped to that host

        returned["hostname"] = f"127.0.0.1:{port}"  # the same server stands for the ingest host now
        client = StreamingClient(Credentials(f"http://127.0.0.1:{port}", "http", None), "DB", "RAW_DATA", "P", 5)
        try:
            channel, status = await client.open("C")
        finally:
            await client.close()
        assert (channel.continuation_token, status.committed_offset_token) == ("c1", None)
    finally:
        await runner.cleanup()

    assert [path for path, _, _ in seen] == ["/v2/streaming/hostname", "/oauth/token"] * 2 + [
        "/v2/streaming/databases/DB/schemas/RAW_DATA/pipes/P/channels/C"]
    assert {agent for _, agent, _ in seen} == {USER_AGENT} and USER_AGENT.startswith("caves_faust/")
