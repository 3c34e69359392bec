"""How a warehouse call's failure is told apart (the rows' content, a lock, or an outage), and what a transaction
sends after each: a ROLLBACK after an answered failure, nothing after an outage (the sink drops the connection)."""

from __future__ import annotations

from typing import Any

import pytest
from snowflake.connector.errors import OperationalError, ProgrammingError

from caves_faust.snowflake.connection import Batch, Warehouse
from caves_faust.snowflake.errors import is_content_error, is_outage
from caves_faust.snowflake.tables import INSERT_BATCH

CONTENT = ProgrammingError(msg="Numeric value 'abc' is not recognized", errno=100038, sqlstate="22018")
LOCKED = ProgrammingError(msg="has locked table", errno=625, sqlstate="57014")
CANCELLED = ProgrammingError(msg="SQL execution was cancelled by the client due to a timeout", errno=604,
                             sqlstate="57014")
UNREACHABLE = OperationalError(msg="Failed to execute request: Max retries exceeded", errno=250003)
SESSION_GONE = ProgrammingError(msg="Session no longer exists", errno=390111, sqlstate="08001")


@pytest.mark.parametrize("error, content, outage", [
    (CONTENT, True, False), (LOCKED, False, False), (CANCELLED, False, True), (UNREACHABLE, False, True),
    (SESSION_GONE, False, True), (ConnectionResetError(), False, True),
])
def test_a_failure_is_content_a_lock_or_an_outage(error: Exception, content: bool, outage: bool):
    assert (is_content_error(error), is_outage(error)) == (content, outage)


class Cursor:
    """Stands in for the connector's cursor: records what is sent, fails the statements it is told to."""

    def __init__(self, failures: dict[str, Exception]):
        self.failures = failures
        self.sent: list[str] = []
        self.closed = False

    def execute(self, statement: str, params: Any = None) -> None:
        self.sent.append(statement)
        if statement in self.failures:
            raise self.failures[statement]

    def close(self) -> None:
        self.closed = True


class Connection:
    def __init__(self, cursor: Cursor):
        self._cursor = cursor

    def cursor(self, kind: Any = None) -> Cursor:
        return self._cursor

    def is_closed(self) -> bool:
        return False


def write_rows(failures: dict[str, Exception]) -> tuple[Cursor, BaseException]:
    cursor = Cursor(failures)
    warehouse = Warehouse.__new__(Warehouse)
    warehouse._conn = Connection(cursor)  # type: ignore[assignment]
    with pytest.raises(Exception) as raised:
        warehouse.write("sales_events", None, Batch(['{"m":{},"c":{}}'], {0: (None, 0)}))
    return cursor, raised.value


def test_after_a_refused_statement_the_transaction_is_rolled_back_and_the_cursor_closed():
    cursor, raised = write_rows({INSERT_BATCH: CONTENT})
    assert raised is CONTENT and cursor.sent[-1] == "ROLLBACK" and cursor.closed


def test_after_an_outage_nothing_more_is_sent():
    cursor, raised = write_rows({INSERT_BATCH: UNREACHABLE})
    assert raised is UNREACHABLE and cursor.sent[-1] == INSERT_BATCH and not cursor.closed


def test_a_rollback_that_fails_is_the_outage_reported():
    # The transaction's end is unknown: the sink must drop the connection, not begin the next transaction in it.
    cursor, raised = write_rows({INSERT_BATCH: CONTENT, "ROLLBACK": UNREACHABLE})
    assert raised is UNREACHABLE and is_outage(raised) and not cursor.closed
