"""The embedded Snowflake's fidelity fixes: each statement as dbt sends it, refused by fakesnow alone, runs once
rewritten, with Snowflake's outcome; and dbt's transactions followed by the detached-transaction watcher."""

from __future__ import annotations

import pytest
import snowflake.connector
from fakesnow.instance import FakeSnow

from caves_faust.devstack.snowflake import _first_word
from caves_faust.devstack.snowflake_fidelity import Fidelity

# What dbt-snowflake sends for an incremental model (`X__dbt_tmp` holds the new rows), trimmed.
CREATE_TMP = "create or replace  temporary view DB1.STAGING.X__dbt_tmp as (select 1 as A union all select 2)"
READ_TMP = "insert into DB1.STAGING.X (A) (select A from DB1.STAGING.X__dbt_tmp)"


@pytest.fixture
def instance() -> FakeSnow:
    return FakeSnow()


@pytest.fixture
def session(instance):
    conn = instance.connect("DB1", "STAGING")
    with conn.cursor() as cur:
        cur.execute("create table DB1.STAGING.X (A integer)")
    yield conn
    conn.close()


def run(conn, sql: str, fidelity: Fidelity | None = None) -> list:
    with conn.cursor() as cur:
        cur.execute(fidelity.rewrite(sql, conn.database, conn.schema) if fidelity else sql)
        return cur.fetchall()


def test_fakesnow_alone_refuses_a_temporary_view_in_a_schema(session):
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="temp"):
        run(session, CREATE_TMP)


def test_a_temporary_view_in_a_schema_is_created_and_read_under_its_name(session):
    fidelity = Fidelity()
    run(session, CREATE_TMP, fidelity)
    run(session, READ_TMP, fidelity)
    assert sorted(run(session, "select A from DB1.STAGING.X")) == [(1,), (2,)]
    # Partly qualified or unqualified, in the session's database and schema, it is the same view.
    assert run(session, "select count(*) from STAGING.x__dbt_tmp", fidelity) == [(2,)]
    assert run(session, "drop view if exists X__DBT_TMP", fidelity)
    assert fidelity.temporary_views == set()


def test_a_temporary_view_is_its_sessions_only(instance, session):
    run(session, CREATE_TMP, Fidelity())
    other = instance.connect("DB1", "STAGING")
    assert run(other, "select count(*) from DB1.STAGING.X") == [(0,)]
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="X__DBT_TMP"):
        run(other, "select * from DB1.STAGING.X__dbt_tmp", Fidelity())


def test_statements_without_temporary_objects_pass_untouched():
    fidelity = Fidelity()
    sql = "select EVENT_CONTENT:temp_c::varchar from RAW_EVENTS_STREAM /* a comment */"
    assert fidelity.rewrite(sql, "DB1", "RAW_DATA") is sql


@pytest.mark.parametrize("sql, verb", [
    ("-- back compat for old kwarg name\n  \n  begin\n/* {\"app\": \"dbt\"} */;", "BEGIN"),  # dbt's
    ("/* {\"app\": \"dbt\"} */ COMMIT", "COMMIT"), ("  insert into T values (1)", "INSERT"), ("-- only a comment", ""),
])
def test_a_transaction_is_followed_whatever_comments_open_it(sql: str, verb: str):
    # The detached-transaction watcher keys on the first word: dbt's transactions too must be seen to begin.
    assert _first_word(sql) == verb
