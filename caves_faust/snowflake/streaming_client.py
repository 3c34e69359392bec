"""Snowpipe Streaming's channel endpoints: open, append rows (gzip NDJSON), bulk channel status, drop.

One `StreamingClient` per pipe, on one aiohttp session of the event loop. Each call either succeeds or raises one
of three errors that say what to do next: `ChannelFenced` (someone reopened the channel: we are no longer its
writer), `StreamingUnavailable` (an outage or a timeout: what was appended may or may not be committed; reopen and
ask the committed offset token), `StreamingRefused` (the request itself was refused: retrying cannot help).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from caves_faust.snowflake.streaming_auth import USER_AGENT, AuthError, Credentials

MAX_REQUEST_BYTES = 4 * 1024 * 1024  # one append, as sent; we cap the uncompressed NDJSON, which is larger
GZIP_LEVEL = 1  # NDJSON of JSON events compresses ~5x even at level 1, at a fraction of level 9's CPU
STALE_SEQUENCER = "STALE_CONTINUATION_TOKEN_SEQUENCER"


class ChannelFenced(Exception):
    """The channel was reopened by another client: its continuation token is stale, our appends are refused."""


class StreamingUnavailable(Exception):
    """The service did not answer, or answered an error that may pass (5xx, 429, a timeout)."""


class StreamingRefused(Exception):
    """The service refused the request for what it is (4xx): sending it again would be refused again."""


@dataclass(frozen=True)
class ChannelStatus:
    name: str
    committed_offset_token: str | None
    rows_error_count: int
    last_error_message: str | None
    last_error_offset_upper_bound: str | None

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> "ChannelStatus":
        return cls(value.get("channel_name", ""), value.get("last_committed_offset_token"),
                   int(value.get("rows_error_count", value.get("rows_errors")) or 0),
                   value.get("last_error_message"), value.get("last_error_offset_upper_bound"))


@dataclass
class OpenChannel:
    """A channel this client opened, and the continuation token its next append must carry."""

    name: str
    continuation_token: str


class StreamingClient:
    def __init__(self, credentials: Credentials, database: str, schema: str, pipe: str, timeout_seconds: float):
        self.credentials = credentials
        self.pipe_path = f"databases/{quote(database)}/schemas/{quote(schema)}/pipes/{quote(pipe)}"
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def open(self, name: str) -> tuple[OpenChannel, ChannelStatus]:
        """Open (or reopen: that fences out its previous client) and say what the channel has committed."""
        answer = await self._call("PUT", f"/v2/streaming/{self.pipe_path}/channels/{quote(name)}", json_body={})
        return OpenChannel(name, answer["next_continuation_token"]), ChannelStatus.from_json(answer["channel_status"])

    async def append(self, channel: OpenChannel, ndjson: bytes, start_offset_token: str, end_offset_token: str) -> None:
        """Append NDJSON rows; acknowledged, not yet committed (see `statuses`)."""
        params = {"continuationToken": channel.continuation_token, "startOffsetToken": start_offset_token,
                  "endOffsetToken": end_offset_token, "requestId": str(uuid.uuid4())}
        body = gzip.compress(ndjson, compresslevel=GZIP_LEVEL)
        headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
        answer = await self._call("POST", f"/v2/streaming/data/{self.pipe_path}/channels/{quote(channel.name)}/rows",
                                  params=params, data=body, headers=headers)
        channel.continuation_token = answer["next_continuation_token"]

    async def statuses(self, names: list[str]) -> dict[str, ChannelStatus]:
        """The channels' committed offset tokens and error counts (channels the service does not know are absent)."""
        answer = await self._call("POST", f"/v2/streaming/{self.pipe_path}:bulk-channel-status",
                                  json_body={"channel_names": names})
        return {name: ChannelStatus.from_json({"channel_name": name, **status})
                for name, status in (answer.get("channel_statuses") or {}).items()}

    async def drop(self, name: str) -> None:
        await self._call("DELETE", f"/v2/streaming/{self.pipe_path}/channels/{quote(name)}", json_body={})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, json_body: dict | None = None, **kwargs: Any) -> dict[str, Any]:
        for attempt in (1, 2):
            try:
                session = await self._ready_session()
                headers = {"Authorization": f"Bearer {self.credentials.token}", "User-Agent": USER_AGENT,
                           **kwargs.pop("headers", {})}
                if json_body is not None:
                    kwargs["data"] = json.dumps(json_body).encode()
                    headers["Content-Type"] = "application/json"
                async with session.request(method, self.credentials.ingest_url + path, headers=headers,
                                           **kwargs) as response:
                    text = await response.text()
                    status = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                raise StreamingUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from None
            if status == 401 and attempt == 1:  # the scoped token expired: renew it once
                self.credentials.token = ""
                continue
            return _answer(method, path, status, text)
        raise AuthError(f"{method} {path}: HTTP 401 with a fresh scoped token")

    async def _ready_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # trust_env: HTTPS_PROXY / NO_PROXY apply, as they do to the Snowflake connector.
            self._session = aiohttp.ClientSession(timeout=self.timeout, trust_env=True)
        if self.credentials.stale():
            await self.credentials.renew(self._session)
        return self._session


def _answer(method: str, path: str, status: int, text: str) -> dict[str, Any]:
    try:
        body = json.loads(text) if text.strip() else {}
    except ValueError:
        body = {"message": text[:300]}
    if status < 300:
        return body if isinstance(body, dict) else {}
    code = body.get("code", "") if isinstance(body, dict) else ""
    what = f"{method} {path}: HTTP {status} {code} {body.get('message', '') if isinstance(body, dict) else ''}"
    if code == STALE_SEQUENCER:
        raise ChannelFenced(what)
    if status in (401, 403):
        raise AuthError(what)
    if status >= 500 or status in (408, 429):
        raise StreamingUnavailable(what)
    raise StreamingRefused(what)
