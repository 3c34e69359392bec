"""Where fakesnow departs from Snowflake in what dbt sends, the statement is rewritten before fakesnow sees it.

Each fix names the Snowflake behaviour it restores. The embedded server applies `Fidelity.rewrite` to every query
of a session; statements none of the fixes concern are passed on untouched, without being parsed.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import sqlglot
from sqlglot import exp

# DuckDB keeps a session's temporary objects in this catalog and schema, and nowhere else.
TEMP_CATALOG, TEMP_SCHEMA = "temp", "main"

_CONCERNED = re.compile(r"\bTEMP(ORARY)?\b", re.IGNORECASE)


class FidelityLayer:
    """In front of fakesnow's query endpoint: each session's statements rewritten by its own `Fidelity`."""

    def __init__(self, sessions: dict[str, Any]):
        self.sessions = sessions  # fakesnow's: session token -> its connection (current database and schema)
        self.states: dict[str, Fidelity] = {}

    def wrapping(self, query_request: Callable) -> Callable:
        async def endpoint(request: Any) -> Any:
            token = session_token(request)
            conn = self.sessions.get(token)
            if conn is None:
                return await query_request(request)  # fakesnow answers an unknown session itself
            for gone in self.states.keys() - self.sessions.keys():
                del self.states[gone]
            sql = await sql_text(request)
            rewritten = self.states.setdefault(token, Fidelity()).rewrite(sql, conn.database, conn.schema)
            if rewritten != sql:
                gzipped = request.headers.get("Content-Encoding") == "gzip"
                body = await request.body()
                text = json.dumps({**json.loads(gzip.decompress(body) if gzipped else body), "sqlText": rewritten})
                request = _with_body(request, gzip.compress(text.encode()) if gzipped else text.encode())
            return await query_request(request)

        return endpoint


def session_token(request: Any) -> str:
    """The session token of a query request (`Authorization: Snowflake Token="..."`)."""
    return request.headers.get("Authorization", "")[17:-1]


async def sql_text(request: Any) -> str:
    """The statement of a query request ("" if unreadable), decoded once per request however many ask."""
    if not hasattr(request.state, "sql_text"):
        body = await request.body()
        try:
            query = json.loads(gzip.decompress(body) if request.headers.get("Content-Encoding") == "gzip" else body)
            request.state.sql_text = str(query["sqlText"])
        except (ValueError, KeyError, TypeError, OSError):
            request.state.sql_text = ""
    return request.state.sql_text


def _with_body(request: Any, body: bytes) -> Any:
    from starlette.requests import Request

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    headers = [(k, v) for k, v in request.scope["headers"] if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    return Request({**request.scope, "headers": headers}, receive)


def _name(identifier: exp.Identifier | None, default: str | None) -> str | None:
    """An identifier as Snowflake resolves it: unquoted ones are upper case."""
    if identifier is None:
        return default.upper() if default else None
    return identifier.name if identifier.quoted else identifier.name.upper()


@dataclass
class Fidelity:
    """The rewriting state of one session: the temporary views it created, by their Snowflake name."""

    temporary_views: set[tuple[str | None, str | None, str]] = field(default_factory=set)

    def rewrite(self, sql: str, database: str | None, schema: str | None) -> str:
        """`sql` as fakesnow runs it the way Snowflake would; `database`/`schema` are the session's current ones."""
        if not _CONCERNED.search(sql) and not self._mentions_temporary_view(sql):
            return sql
        try:
            statement = sqlglot.parse_one(sql, read="snowflake")
        except sqlglot.errors.ParseError:
            return sql  # fakesnow reports the error as Snowflake would
        changed = self._temporary_view_in_session_catalog(statement, database, schema)
        return statement.sql(dialect="snowflake") if changed else sql

    def _mentions_temporary_view(self, sql: str) -> bool:
        upper = sql.upper()
        return any(name.upper() in upper for _, _, name in self.temporary_views)

    def _temporary_view_in_session_catalog(self, statement: exp.Expr, database: str | None, schema: str | None) -> bool:
        """Snowflake creates a temporary view in any schema (`CREATE TEMPORARY VIEW db.schema.v`, what dbt's
        incremental models do), visible to its session only and under that name. DuckDB refuses a temporary object
        outside its temp catalog ("TEMPORARY table names can only use the temp catalog"): the view is created there,
        still per session, and the session's later references to `db.schema.v` are pointed at it."""
        changed = False
        if (isinstance(statement, exp.Create) and statement.kind == "VIEW"
                and statement.find(exp.TemporaryProperty) and isinstance(statement.this, exp.Table)):
            self.temporary_views.add(self._key(statement.this, database, schema))
        dropped = statement.args.get("tables") or [] if isinstance(statement, exp.Drop) else []
        for table in list(statement.find_all(exp.Table)):
            key = self._key(table, database, schema)
            if table.name and key in self.temporary_views:
                if any(table is t for t in dropped):
                    self.temporary_views.discard(key)
                table.set("catalog", exp.to_identifier(TEMP_CATALOG))
                table.set("db", exp.to_identifier(TEMP_SCHEMA))
                changed = True
        return changed

    @staticmethod
    def _key(table: exp.Table, database: str | None, schema: str | None) -> tuple[str | None, str | None, str]:
        return (_name(table.args.get("catalog"), database), _name(table.args.get("db"), schema),
                _name(table.this, None) or "")
