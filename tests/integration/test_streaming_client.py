"""The streaming client against the embedded Snowflake's Snowpipe Streaming REST API (no Kafka, no worker):
rows appear only once committed, the committed offset token says what is stored, a reopen fences the old client;
an open answers SUCCESS, columns left out are NULL (or defaults, under EMBEDDED_STREAMING_OMITTED_COLUMNS=default),
past 10 requests a second a channel answers 429 and the same request is sent again, an expired channel forgets
its token."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import aiohttp
import pytest

from caves_faust.devstack.snowpipe import REQUESTS_PER_SECOND
from caves_faust.sink.channels import StreamingWriter, StreamRow, Written
from caves_faust.snowflake.streaming_auth import Credentials
from caves_faust.snowflake.streaming_client import ChannelFenced, ChannelStatus, StreamingClient, StreamingUnavailable
from caves_faust.snowflake.tables import DDL, DLQ_EVENTS_DDL
from tests.harness import Stack

pytestmark = pytest.mark.integration

_databases = itertools.count()
PIPE = "RAW_EVENTS_STREAM-STREAMING"


def ndjson(*rows: dict) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)


def row(n: int, **overrides: object) -> dict:
    return {"EVENT_TYPE": "ORDER_CREATED", "PRODUCT_ID": 1000 + n, "CUSTOMER_ID": n,
            "EVENT_METADATA": {"partition": 0, "offset": n}, "EVENT_CONTENT": {"n": n, "vin": "Crémant 🍾"},
            "INGESTION_TIME": "2026-12-07T10:00:00.000+00:00", **overrides}


@pytest.fixture
def database(stack: Stack) -> str:
    name = f"STREAMING_CLIENT_{next(_databases)}_DB"
    stack.query(name, DDL[0])
    return name


@pytest.fixture
async def writer_for(stack: Stack, database: str):
    """StreamingWriter(prefix) on a client of its own, closed after the test."""
    clients: list[StreamingClient] = []

    def make(channel_prefix: str) -> StreamingWriter:
        clients.append(client(stack, database))
        return StreamingWriter(clients[-1], channel_prefix, commit_timeout_seconds=30)

    yield make
    for opened in clients:
        await opened.close()


def client(stack: Stack, database: str) -> StreamingClient:
    credentials = Credentials(f"http://127.0.0.1:{stack.snowflake.port}", "http", None)
    return StreamingClient(credentials, database, "RAW_DATA", PIPE, timeout_seconds=10)


async def committed(writer: StreamingClient, channel: str, token: str, timeout: float = 30) -> ChannelStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = (await writer.statuses([channel])).get(channel)
        if status is not None and status.committed_offset_token == token:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"{channel} never committed offset token {token}")


def stored(stack: Stack, database: str) -> list[tuple]:
    return stack.query(database, "SELECT PRODUCT_ID, EVENT_METADATA:offset::INTEGER, EVENT_CONTENT, INGESTION_TIME "
                                 "FROM RAW_EVENTS_STREAM ORDER BY 2")


async def test_appended_rows_appear_with_the_committed_offset_token_after_the_commit_delay(stack, database):
    writer = client(stack, database)
    try:
        channel, opened = await writer.open("SALES_0")
        assert opened.committed_offset_token is None
        appended_at = time.monotonic()
        await writer.append(channel, ndjson(row(0), row(1), row(2)), "0", "2")
        right_after = (await writer.statuses(["SALES_0"]))["SALES_0"]
        if time.monotonic() - appended_at < stack.snowflake.streaming_commit_seconds:
            assert right_after.committed_offset_token is None  # acknowledged, not committed yet
        await committed(writer, "SALES_0", "2")
        rows = stored(stack, database)
        assert [(r[0], r[1]) for r in rows] == [(1000, 0), (1001, 1), (1002, 2)]
        assert json.loads(rows[0][2]) == {"n": 0, "vin": "Crémant 🍾"} and rows[0][3] is not None

        shown = stack.query(database, "SHOW CHANNELS IN TABLE RAW_EVENTS_STREAM")
        assert [(r[1], r[7]) for r in shown] == [("SALES_0", "2")]
    finally:
        await writer.close()


async def test_reopening_a_channel_fences_its_old_client_and_discards_what_it_had_not_committed(stack, database):
    old, new = client(stack, database), client(stack, database)
    try:
        old_channel, _ = await old.open("SALES_3")
        await old.append(old_channel, ndjson(row(10)), "10", "10")
        await committed(old, "SALES_3", "10")
        await old.append(old_channel, ndjson(row(11)), "11", "11")  # in flight when the new owner opens

        new_channel, status = await new.open("SALES_3")
        assert status.committed_offset_token == "10"
        with pytest.raises(ChannelFenced):
            await old.append(old_channel, ndjson(row(12)), "12", "12")
        await new.append(new_channel, ndjson(row(11), row(12)), "11", "12")
        await committed(new, "SALES_3", "12")
        assert [r[1] for r in stored(stack, database)] == [10, 11, 12]  # 11 once: the old copy was discarded
    finally:
        await old.close()
        await new.close()


async def test_rows_the_table_cannot_take_are_counted_as_errors_and_the_rest_commits(stack, database):
    writer = client(stack, database)
    try:
        channel, _ = await writer.open("SALES_5")
        body = ndjson(row(20), row(21, PRODUCT_ID="vingt-et-un"), row(22)) + b"{not json\n" + ndjson(
            row(24, EVENT_CONTENT=None))
        await writer.append(channel, body, "20", "24")
        status = await committed(writer, "SALES_5", "24")
        assert status.rows_error_count == 3 and status.last_error_offset_upper_bound == "24"
        assert [r[1] for r in stored(stack, database)] == [20, 22]
    finally:
        await writer.close()


async def write(writer: StreamingWriter, rows: list[StreamRow]) -> Written:
    """One batch through the writer as the sink takes it: appended, committed, its errors accounted for."""
    appended = await writer.append(rows)
    written = await writer.until_committed(appended)
    writer.accounted(appended, {p: count for p, (count, _) in written.errors.items()})
    return written


def stream_rows(partition: int, offsets: range, **overrides: object) -> list[StreamRow]:
    return [StreamRow(partition, n, json.dumps(row(n, EVENT_METADATA={"partition": partition, "offset": n},
                                                   **overrides))) for n in offsets]


async def test_a_restarted_writer_resumes_after_the_committed_tokens_and_a_zombie_is_fenced_out(stack, database):
    first, second = client(stack, database), client(stack, database)
    zombie = StreamingWriter(first, "caves-faust_sales.events", commit_timeout_seconds=30)
    owner = StreamingWriter(second, "caves-faust_sales.events", commit_timeout_seconds=30)
    try:
        assert await zombie.committed({0, 1}) == {0: None, 1: None}
        written = await write(zombie, stream_rows(0, range(0, 5)) + stream_rows(1, range(0, 3)))
        assert (written.rows, written.fenced, written.errors) == (8, set(), {})

        assert await owner.committed({0, 1}) == {0: 4, 1: 2}  # a restart, or the partitions' new owner
        fenced = await write(zombie, stream_rows(0, range(5, 7)))
        assert fenced.fenced == {0} and fenced.rows == 0
        assert (await write(zombie, stream_rows(0, range(7, 8)))).fenced == {0}  # and it stays out
        assert (await write(owner, stream_rows(0, range(5, 7)) + stream_rows(1, range(3, 4)))).rows == 3

        stored_rows = stack.query(database, "SELECT EVENT_METADATA:partition::INTEGER, EVENT_METADATA:offset::INTEGER "
                                            "FROM RAW_EVENTS_STREAM ORDER BY 1, 2")
        assert stored_rows == [(0, n) for n in range(7)] + [(1, n) for n in range(4)]
        channels = stack.query(database, "SHOW CHANNELS LIKE 'CAVES_FAUST_SALES_EVENTS_%'")
        assert sorted((r[1], r[7]) for r in channels) == [("CAVES_FAUST_SALES_EVENTS_0", "6"),
                                                          ("CAVES_FAUST_SALES_EVENTS_1", "3")]
    finally:
        await first.close()
        await second.close()


async def test_a_write_reports_the_rows_the_service_counted_as_errors(writer_for):
    writer = writer_for("errors")
    await writer.committed({2})
    rows = stream_rows(2, range(0, 3)) + stream_rows(2, range(3, 4), PRODUCT_ID=10**40)
    written = await write(writer, rows)
    assert written.errors[2][0] == 1 and "out of range" in written.errors[2][1]
    assert written.uncompressed_bytes == sum(len(r.line) + 1 for r in rows)


async def test_a_batch_appended_behind_another_finds_its_own_errors(stack, database, writer_for):
    writer = writer_for("pipelined")
    await writer.committed({4})
    first = await writer.append(stream_rows(4, range(0, 3)))
    second = await writer.append(stream_rows(4, range(3, 5)) + stream_rows(4, range(5, 6), PRODUCT_ID=10**40))
    # The first batch's wait ends once its rows committed; the second's error may be counted by then.
    first_written = await writer.until_committed(first)
    writer.accounted(first, {})  # none of the first batch's rows is missing
    second_written = await writer.until_committed(second)
    assert first_written.rows == 3 and second_written.rows == 3
    assert second_written.errors[4][0] == 1 and "out of range" in second_written.errors[4][1]
    writer.accounted(second, {4: 1})
    third = await write(writer, stream_rows(4, range(6, 7)))
    assert third.errors == {}  # every error reported is accounted for now
    stored_offsets = stack.query(database, "SELECT EVENT_METADATA:offset::INTEGER FROM RAW_EVENTS_STREAM ORDER BY 1")
    assert [r[0] for r in stored_offsets] == [0, 1, 2, 3, 4, 6]


async def test_a_wait_on_rows_appended_before_a_reset_fails_rather_than_trusting_the_old_channel(writer_for):
    writer = writer_for("reset")
    await writer.committed({5})
    appended = await writer.append(stream_rows(5, range(0, 2)))
    writer.reset()  # an outage seen by the batch before: the channels are reopened
    with pytest.raises(StreamingUnavailable, match="reopened"):
        await writer.until_committed(appended)
    assert await writer.committed({5}) == {5: None}  # reopened before their commit: they were discarded


async def test_what_a_channel_was_handed_counts_as_on_its_way_until_a_reset(writer_for):
    # After a rebalance Faust may deliver the same events in two batches in flight: the second must not append
    # again what the first appended, committed or not yet.
    writer = writer_for("handed")
    committed = await writer.committed({6})
    assert writer.handed_over(committed) == {6: -1}
    first = await writer.append(stream_rows(6, range(0, 5)))
    assert writer.handed_over(await writer.committed({6})) == {6: 4}  # before its commit
    await writer.until_committed(first)
    writer.reset()  # reopened: only what committed counts
    assert writer.handed_over(await writer.committed({6})) == {6: 4}
    await writer.append(stream_rows(6, range(5, 7)))
    writer.reset()
    assert writer.handed_over(await writer.committed({6})) == {6: 4}  # reopened before their commit: discarded


async def rest(stack: Stack, method: str, path: str, body: dict) -> tuple[int, dict]:
    """One raw request to the embedded Snowpipe Streaming (no retry): its status and body."""
    async with aiohttp.ClientSession() as session, session.request(
            method, f"http://127.0.0.1:{stack.snowflake.port}/v2/streaming{path}", json=body,
            headers={"Authorization": "Bearer embedded-scoped-token"}) as response:
        return response.status, await response.json()


async def test_an_open_answers_success_and_a_reopen_over_pending_rows_fails_only_when_asked_to(stack, database):
    channel_path = f"/databases/{database}/schemas/RAW_DATA/pipes/{PIPE}/channels/SALES_7"
    status, opened = await rest(stack, "PUT", channel_path, {"fail_on_uncommitted_rows": True})
    assert status == 200 and opened["channel_status"]["channel_status_code"] == "SUCCESS"
    writer = client(stack, database)
    try:
        channel, _ = await writer.open("SALES_7")  # the client checks SUCCESS, and asks not to fail
        await writer.append(channel, ndjson(row(70)), "70", "70")
        status, refused = await rest(stack, "PUT", channel_path, {"fail_on_uncommitted_rows": True})
        if status == 200:  # committed already (a slow machine): nothing was pending
            assert opened["channel_status"]["last_committed_offset_token"] is None
            assert refused["channel_status"]["last_committed_offset_token"] == "70"
        else:
            assert (status, refused["code"]) == (409, "ERR_CHANNEL_HAS_UNCOMMITTED_DATA")
            _, reopened = await writer.open("SALES_7")  # fail_on_uncommitted_rows false: the pending row goes
            assert reopened.committed_offset_token is None
    finally:
        await writer.close()


async def test_columns_a_row_leaves_out_are_null_or_their_defaults_as_the_embedded_snowflake_is_set(stack, database):
    stack.query(database, DLQ_EVENTS_DDL)
    null_mode = stack.snowflake.streaming_omitted_columns == "null"
    rows = StreamingClient(Credentials(f"http://127.0.0.1:{stack.snowflake.port}", "http", None), database,
                           "RAW_DATA", PIPE, timeout_seconds=10)
    letters = StreamingClient(Credentials(f"http://127.0.0.1:{stack.snowflake.port}", "http", None), database,
                              "RAW_DATA", "DLQ_EVENTS-STREAMING", timeout_seconds=10)
    try:
        channel, _ = await rows.open("OMITTED_0")
        without_time = row(80)
        del without_time["INGESTION_TIME"]
        await rows.append(channel, ndjson(without_time), "80", "80")
        letter_channel, _ = await letters.open("OMITTED_0")
        letter = {"ERROR_TYPE": "not_json", "SOURCE_TOPIC": "sales_events", "SOURCE_PARTITION": 0, "SOURCE_OFFSET": 81}
        await letters.append(letter_channel, ndjson(letter), "81", "81")
        await committed(rows, "OMITTED_0", "80")
        letter_status = await committed(letters, "OMITTED_0", "81")
    finally:
        await rows.close()
        await letters.close()

    # (IS NULL: fakesnow's results show a NULL TIMESTAMP_TZ as 1970-01-01.)
    [(no_time,)] = stack.query(database, "SELECT INGESTION_TIME IS NULL FROM RAW_EVENTS_STREAM")
    stored_letters = stack.query(database, "SELECT REPLAYED, INGESTION_TIME IS NULL FROM DLQ_EVENTS")
    if null_mode:  # the limitations page: NULL into the columns left out; REPLAYED is NOT NULL: the row is refused
        assert no_time and stored_letters == [] and letter_status.rows_error_count == 1
        assert "REPLAYED" in (letter_status.last_error_message or "")
    else:
        assert not no_time and stored_letters == [(False, False)]


async def test_past_its_request_rate_a_channel_answers_429(stack, database):
    channel_path = f"/databases/{database}/schemas/RAW_DATA/pipes/{PIPE}/channels/SALES_8"
    started = time.monotonic()
    answers = [await rest(stack, "PUT", channel_path, {}) for _ in range(REQUESTS_PER_SECOND + 1)]
    if time.monotonic() - started < 1:  # all within the second
        assert [status for status, _ in answers] == [200] * REQUESTS_PER_SECOND + [429]
        assert answers[-1][1]["code"] == "ERR_TOO_MANY_REQUESTS"


async def test_a_burst_of_429s_is_ridden_out_by_sending_the_same_requests_again_without_reopening(stack, database):
    writer = StreamingWriter(client(stack, database), "throttled", commit_timeout_seconds=30)
    try:
        assert await writer.committed({9}) == {9: None}
        sequencer_before = stack.query(database, "SHOW CHANNELS LIKE 'THROTTLED_9'")[0][5]
        burst = 5  # the append's and the status polls' next requests, whoever sends them
        await asyncio.to_thread(stack.snowpipe, ":throttle", {"requests": burst})
        written = await write(writer, stream_rows(9, range(0, 5)))
        assert (written.rows, written.fenced, written.errors) == (5, set(), {})
        left = (await asyncio.to_thread(stack.snowpipe, ":throttle", {"requests": 0}))["were_left"]
    finally:
        await writer.client.close()
    assert left == 0  # every 429 of the burst was answered to this writer
    [channel] = stack.query(database, "SHOW CHANNELS LIKE 'THROTTLED_9'")
    assert (channel[5], channel[7]) == (sequencer_before, "4")  # not reopened; committed up to offset 4
    offsets = stack.query(database, "SELECT EVENT_METADATA:offset::INTEGER FROM RAW_EVENTS_STREAM "
                                    "WHERE EVENT_METADATA:partition::INTEGER = 9 ORDER BY 1")
    assert [r[0] for r in offsets] == [0, 1, 2, 3, 4]  # each once


async def test_an_expired_channel_opens_without_its_token_and_the_table_says_what_it_had_committed(stack, database):
    first = StreamingWriter(client(stack, database), "expiring", commit_timeout_seconds=30)
    second = StreamingWriter(client(stack, database), "expiring", commit_timeout_seconds=30)
    try:
        await first.committed({10})
        await write(first, stream_rows(10, range(0, 3)))
        expired = await asyncio.to_thread(
            stack.snowpipe, f"/databases/{database}/schemas/RAW_DATA/pipes/{PIPE}/channels/EXPIRING_10:expire")
        assert expired == {"expired": "EXPIRING_10", "offset_token": "2"}

        async def table_mark(partition: int) -> int | None:
            [(highest,)] = stack.query(database, "SELECT MAX(EVENT_METADATA:offset::INTEGER) FROM RAW_EVENTS_STREAM "
                                                 "WHERE EVENT_METADATA:partition::INTEGER = %s", (partition,))
            return highest

        assert await second.committed({10}, table_mark) == {10: 2}
        assert (await first.client.open("EXPIRING_10"))[1].committed_offset_token is None  # the token is gone
    finally:
        await first.client.close()
        await second.client.close()
