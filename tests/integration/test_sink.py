"""The Snowflake sink: every valid event exactly once in RAW_EVENTS_STREAM, with its content as sent.
What fails on the way (crashes, outages, rebalances) is tests/reliability/."""

from __future__ import annotations

import json

import pytest

from caves_faust.warehouse import DDL
from tests.delivery import Sent, assert_exactly_once
from tests.integration.events import encoded, order, valid_events

pytestmark = pytest.mark.integration
SINK_MODES = pytest.mark.parametrize("sink_mode", ["warehouse", "streaming"])


@SINK_MODES
def test_n_events_exactly_n_rows_with_content_as_sent(pipeline, start_worker, sink_mode):
    events = valid_events(3000)
    events[5]["deeply"] = {"nested": [{"undeclared": ["champ", "é", "🍾", None, 1.5e-7, 10**18]}]}
    events[6]["product_name"] = "Crémant d'Alsace « Réserve » \u2028 ' ; DROP TABLE RAW_EVENTS_STREAM; --"
    worker = start_worker(SINK_MODE=sink_mode)
    sent = Sent()
    sent.produce(pipeline, encoded(events))

    assert_exactly_once(pipeline, sent, worker)
    metadata = pipeline.rows()[0][0]
    assert {"topic", "partition", "offset", "timestamp", "key"} <= set(metadata)


@SINK_MODES
def test_a_row_snowflake_refuses_goes_to_the_dlq_and_the_others_are_stored(pipeline, start_worker, stack, sink_mode):
    # A stricter table than the one the sink creates, as a DBA might declare it: products above 999 are refused.
    stack.query(pipeline.database, DDL[0].replace("PRODUCT_ID INTEGER", "PRODUCT_ID NUMBER(3, 0)"))
    accepted = [order(n, product=100 + n) for n in range(30)]
    refused = order(99, product=1049)
    worker = start_worker(SINK_MODE=sink_mode)
    sent = Sent()
    sent.produce(pipeline, encoded(accepted[:17] + [refused] + accepted[17:]))

    assert_exactly_once(pipeline, sent, worker, refused_by_snowflake=True)
    [letter] = pipeline.dead_letters()
    assert letter["error_type"] == "snowflake_rejected" and "1049" in letter["error_message"]
    assert json.loads(letter["payload"]) == refused
    assert pipeline.row_count() == len(accepted)
