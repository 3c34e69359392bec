"""How a Snowflake failure is told apart: an outage (no answer), a lock conflict, or content Snowflake refuses.

The sinks retry an outage and a lock conflict, and dead-letter the rows a content error is about."""

from __future__ import annotations

from snowflake.connector.errors import DataError, Error, IntegrityError, ProgrammingError

# Snowflake's error when a statement found a table locked by another transaction past LOCK_TIMEOUT ("... has locked
# table ... and this lock has not yet been released").
LOCK_CONFLICT_ERRNO = 625
# Snowflake's error for a statement cancelled, here by the connector once it outlived `network_timeout`: slowness,
# never the rows' content.
STATEMENT_CANCELLED_ERRNO = 604

# What a warehouse call raises when Snowflake fails: connector errors and the network below them.
WAREHOUSE_ERRORS = (Error, OSError)


class FencedOut(Exception):
    """Another writer advanced a partition's high-water mark: our view of it is stale."""


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether a statement failed because another transaction holds a lock it needs."""
    return isinstance(exc, Error) and exc.errno == LOCK_CONFLICT_ERRNO


def is_content_error(exc: BaseException) -> bool:
    """Whether Snowflake refused the statement for what it contains (vs. being unreachable, restarting, slow,
    expiring our session, or waiting on a lock). Connection-class SQLSTATEs (08xxx) are outages even on a
    ProgrammingError."""
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    return (isinstance(exc, (ProgrammingError, DataError, IntegrityError)) and not sqlstate.startswith("08")
            and not is_lock_conflict(exc) and exc.errno != STATEMENT_CANCELLED_ERRNO)


def is_outage(exc: BaseException) -> bool:
    """Whether a warehouse call failed without an answer from Snowflake (the sink then drops the connection)."""
    return isinstance(exc, WAREHOUSE_ERRORS) and not is_content_error(exc) and not is_lock_conflict(exc)
