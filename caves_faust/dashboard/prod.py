"""What the dashboard reads from Snowflake: SELECT statements over the warehouse models, cached for a short time.

Read-only by construction: `read` runs nothing but a SELECT. One connection per dashboard process, opened with
the worker's settings through `warehouse.connect_kwargs` (one place to configure Snowflake), shared by every page
view under a lock. A result is kept `DASHBOARD_CACHE_SECONDS`, so page views within that time neither query nor
resume a warehouse. After a failure, reads pause (`pause.py`); the page says why it has no figure.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pandas as pd
import snowflake.connector
import streamlit as st
from snowflake.connector import SnowflakeConnection

from caves_faust.dashboard.config import settings
from caves_faust.dashboard.pause import RETRY_SECONDS, Pause
from caves_faust.snowflake.connection import connect_kwargs, describe
from caves_faust.snowflake.errors import WAREHOUSE_ERRORS

log = logging.getLogger(__name__)

TABLE_MISSING = 2003  # Snowflake's errno for "does not exist or not authorized"


class Unavailable(Exception):
    """Why a figure cannot be shown, in words for the shop's staff."""


NOT_BUILT = ("Les tables d'analyse ne sont pas encore construites : l'ELT n'a pas encore tourné "
             "(`faust -A caves_faust elt`, ou le worker leader toutes les ELT_INTERVAL_SECONDS).")


class Snowflake:
    """The dashboard's one connection, opened when first needed and again after a failure."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connection: SnowflakeConnection | None = None
        self.pause = Pause()

    def select(self, sql: str, params: tuple, missing: str) -> pd.DataFrame:
        with self.lock:
            self.pause.check()
            try:
                if self.connection is None:
                    log.info("dashboard: connecting to Snowflake, %s", describe(settings()))
                    self.connection = snowflake.connector.connect(**connect_kwargs(settings()))
                with self.connection.cursor() as cur:
                    cur.execute(sql, params)
                    names = [column.name for column in cur.description]
                    rows: list[Any] = cur.fetchall()
            except WAREHOUSE_ERRORS as exc:
                if getattr(exc, "errno", None) == TABLE_MISSING:
                    raise Unavailable(missing) from None
                self.connection = None
                log.warning("dashboard: Snowflake read failed (%s), next try in %.0fs", type(exc).__name__,
                            RETRY_SECONDS)
                raise self.pause.failed(Unavailable(
                    f"Snowflake ne répond pas ({describe(settings())}) : réessayez dans un instant.")) from None
        return pd.DataFrame.from_records(rows, columns=names)


@st.cache_resource(show_spinner=False)
def _snowflake() -> Snowflake:
    return Snowflake()


@st.cache_data(ttl=settings().dashboard_cache_seconds, show_spinner=False)
def read(sql: str, params: tuple = (), missing: str = NOT_BUILT) -> pd.DataFrame:
    """The rows of one SELECT, columns named as Snowflake names them (upper case); `missing` says why when a
    table it reads does not exist."""
    if not sql.lstrip().upper().startswith("SELECT"):
        raise ValueError("the dashboard only reads")
    return _snowflake().select(sql, params, missing)
