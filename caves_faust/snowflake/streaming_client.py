"""Snowpipe Streaming's channel endpoints: open, append rows (gzip NDJSON), bulk channel status, drop.

One `StreamingClient` per pipe, on one aiohttp session of the event loop. Each call either succeeds or raises one
of three errors that say what to do next: `ChannelFenced` (someone reopened the channel: we are no longer its
writer), `StreamingUnavailable` (an outage or a timeout: what was appended may or may not be committed; reopen and
ask the committed offset token), `StreamingRefused` (the request itself was refused: retrying cannot help).

Before that, a call answered HTTP 429 or 408 (the request was not taken: throttled, or not received in time) is
sent again, the same request, with capped exponential backoff (the `Retry-After` the service gives, when it gives
one), for up to the client's timeout; so is a call that changes nothing (an open, a status, a drop) answered 5xx
or not answered. An append answered 5xx or not answered is not sent again: it may have been taken, and a second
copy of its rows would be a second row per event; the caller reopens the channel instead, which discards it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from caves_faust.snowflake.streaming_auth import USER_AGENT, AuthError, Credentials

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4 * 1024 * 1024  # one append, as sent; we cap the uncompressed NDJSON, which is larger
GZIP_LEVEL = 1  # NDJSON of JSON events compresses ~5x even at level 1, at a fraction of level 9's CPU
STALE_SEQUENCER = "STALE_CONTINUATION_TOKEN_SEQUENCER"
# The channel status code of an open that worked: Snowflake's Openflow client refuses a channel answering another.
OPEN_SUCCEEDED = "SUCCESS"
# A reopen fences the previous writer and discards its appends not committed yet: our exactly-once rests on the
# committed token alone (what it covers is never appended again, the rest is appended again), so we never want
# the 409 that `true` answers while some are pending. Sent explicitly, as Snowflake's Openflow client does.
FAIL_ON_UNCOMMITTED_ROWS = False
# Sending a request again after a 429 or 408: first wait, doubling up to the cap (unless the service says).
FIRST_RETRY_SECONDS = 0.25
MAX_RETRY_SECONDS = 4.0
NOT_TAKEN = (408, 429)  # the request was not taken: sending it again cannot double anything


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
        """Open (or reopen: that fences out its previous client and discards its uncommitted appends) and say what
        the channel has committed. A channel status code other than SUCCESS is refused: no token from it is used."""
        answer = await self._call("PUT", f"/v2/streaming/{self.pipe_path}/channels/{quote(name)}",
                                  json_body={"fail_on_uncommitted_rows": FAIL_ON_UNCOMMITTED_ROWS})
        status = answer.get("channel_status") or {}
        code = status.get("channel_status_code")
        if code != OPEN_SUCCEEDED:
            raise StreamingRefused(f"open channel {name} on {self.pipe_path}: channel_status_code {code!r}, not "
                                   f"{OPEN_SUCCEEDED!r}: {status.get('last_error_message') or 'no message'}")
        return OpenChannel(name, answer["next_continuation_token"]), ChannelStatus.from_json(status)

    async def append(self, channel: OpenChannel, ndjson: bytes, start_offset_token: str, end_offset_token: str) -> None:
        """Append NDJSON rows; acknowledged, not yet committed (see `statuses`). Compressed in a thread (zlib lets
        go of the GIL): up to 4 MiB of it held the event loop for tens of milliseconds."""
        params = {"continuationToken": channel.continuation_token, "startOffsetToken": start_offset_token,
                  "endOffsetToken": end_offset_token, "requestId": str(uuid.uuid4())}
        body = await asyncio.to_thread(gzip.compress, ndjson, compresslevel=GZIP_LEVEL)
        headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
        answer = await self._call("POST", f"/v2/streaming/data/{self.pipe_path}/channels/{quote(channel.name)}/rows",
                                  params=params, data=body, headers=headers, changes_data=True)
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

    async def _call(self, method: str, path: str, json_body: dict | None = None, changes_data: bool = False,
                    headers: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
        """The request, sent again as the module says; `changes_data`: an append, never sent twice unless it was
        not taken (429, 408)."""
        if json_body is not None:
            kwargs["data"] = json.dumps(json_body).encode()
            headers = {**(headers or {}), "Content-Type": "application/json"}
        deadline = time.monotonic() + self.timeout.total if self.timeout.total else float("inf")
        retries = 0
        renewed = False
        while True:
            try:
                status, text, retry_after = await self._send(method, path, headers or {}, kwargs)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                what = f"{method} {path}: {type(exc).__name__}: {exc}"
                if changes_data:
                    raise StreamingUnavailable(what) from None
                status, text, retry_after = 0, what, None
            if status == 401 and not renewed:  # the scoped token expired: renew it once
                self.credentials.token = ""
                renewed = True
                continue
            if not (status in NOT_TAKEN or (not changes_data and (status == 0 or status >= 500))):
                if retries:
                    log.info("streaming: %s %s answered after %d retries", method, path, retries)
                if status == 0:
                    raise StreamingUnavailable(text)
                return _answer(method, path, status, text)
            retries += 1
            wait = min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** (retries - 1)) if retry_after is None \
                else retry_after
            if time.monotonic() + wait > deadline:
                if status == 0:
                    raise StreamingUnavailable(f"{text} ({retries} tries)")
                return _answer(method, path, status, text)
            if retries == 1:
                log.warning("streaming: %s %s answered %s, sending it again in %.2fs (and so on, for up to %.0fs)",
                            method, path, status or text, wait, self.timeout.total or 0)
            await asyncio.sleep(wait)

    async def _send(self, method: str, path: str, headers: dict[str, str], kwargs: dict[str, Any],
                    ) -> tuple[int, str, float | None]:
        """One HTTP request: its status, its body, and the seconds its Retry-After asks (None: not given)."""
        session = await self._ready_session()
        headers = {"Authorization": f"Bearer {self.credentials.token}", "User-Agent": USER_AGENT, **headers}
        async with session.request(method, self.credentials.ingest_url + path, headers=headers, **kwargs) as response:
            return response.status, await response.text(), _retry_after(response.headers.get("Retry-After"))

    async def _ready_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # trust_env: HTTPS_PROXY / NO_PROXY apply, as they do to the Snowflake connector.
            self._session = aiohttp.ClientSession(timeout=self.timeout, trust_env=True)
        if self.credentials.stale():
            await self.credentials.renew(self._session)
        return self._session


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (RFC 9110: a number of seconds, or a date, which is read as none given)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


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
