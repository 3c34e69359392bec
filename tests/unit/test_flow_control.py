"""The agents' buffers are cleared when the flow resumes after a rebalance, never while it runs."""

from __future__ import annotations

from mode.utils.queues import ThrowableQueue

from caves_faust.app import _FlowControl


def test_resuming_a_running_flow_keeps_what_the_agents_have_buffered():
    flow = _FlowControl()  # suspended until the first assignment, as Faust's
    buffer = ThrowableQueue(maxsize=10, flow_control=flow, clear_on_resume=True)
    flow.resume()
    buffer.put_nowait("offset 420")

    flow.resume()  # Faust's recovery resumes again once the stream partitions are seeked
    assert buffer.qsize() == 1

    flow.suspend()  # a rebalance: what was fetched before it is dropped, and read again from the committed offset
    flow.resume()
    assert buffer.qsize() == 0
