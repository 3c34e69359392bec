"""Every figure the dashboard reads from the warehouse, one function each: the analytics and facts that the dbt
models build in PROD (and STAGING), and the raw tables the worker writes. Names and columns follow the outside
contract and the dbt project (`caves_faust/dbt_project/`)."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd

from caves_faust.dashboard.config import settings
from caves_faust.dashboard.prod import read

PROD = "PROD"
STAGING = "STAGING"
RAW = "RAW_DATA"
LATEST_ORDERS = 10
NOTHING_WRITTEN = "Le worker n'a encore rien écrit dans Snowflake : est-il démarré ?"
STORED = f"SELECT MAX(INGESTION_TIME) AS LAST_COMMIT, COUNT(*) AS EVENTS FROM {RAW}.RAW_EVENTS_STREAM"
NO_DEAD_LETTERS_TABLE = "Les lettres mortes ne sont pas encore copiées dans Snowflake (table DLQ_EVENTS)."


def daily_sales() -> pd.DataFrame:
    return read(f"SELECT SALES_DATE, SALES_CHANNEL, ORDERS, UNITS, REVENUE FROM {PROD}.DAILY_SALES")


def monthly_category_sales(since: date) -> pd.DataFrame:
    """Per month (its first day) and category, from `since` on: net revenue and bottles, history and stream."""
    return read(
        f"""SELECT DATE_TRUNC('MONTH', SALES_DATE) AS MONTH, CATEGORY, SUM(NET_REVENUE) AS REVENUE,
                   SUM(QUANTITY) AS UNITS
            FROM {PROD}.FCT_SALES WHERE SALES_DATE >= ? GROUP BY MONTH, CATEGORY""",
        (since,),
    )


def sales_sources() -> pd.DataFrame:
    """Per sales date: its orders, and how many of them come from history files (the rest: the stream)."""
    return read(f"""SELECT SALES_DATE, SUM(ORDERS) AS ORDERS, SUM(HISTORY_ORDERS) AS HISTORY_ORDERS
                    FROM {PROD}.DAILY_SALES GROUP BY SALES_DATE""")


def product_performance() -> pd.DataFrame:
    return read(
        f"SELECT PRODUCT_ID, PRODUCT_NAME, CATEGORY, ORDERS, UNITS_SOLD, REVENUE FROM {PROD}.PRODUCT_PERFORMANCE"
    )


def inventory_status() -> pd.DataFrame:
    """Per product: the warehouse's stock and the bottles sold over the last 7 days (the pace of its cover)."""
    return read(f"SELECT PRODUCT_ID, PRODUCT_NAME, STOCK, UNITS_SOLD_LAST_7_DAYS FROM {PROD}.INVENTORY_STATUS")


def inventory_by_location() -> pd.DataFrame:
    """Per (product, location): the warehouse's stock and reorder point."""
    return read(f"SELECT PRODUCT_ID, LOCATION, STOCK, REORDER_POINT FROM {PROD}.INVENTORY_BY_LOCATION")


def customer_metrics() -> pd.DataFrame:
    return read(f"SELECT CUSTOMER_ID, ORDERS, REVENUE, FIRST_ORDER_AT, LAST_ORDER_AT FROM {PROD}.CUSTOMER_METRICS")


def latest_orders() -> pd.DataFrame:
    return read(
        f"""SELECT lines.ORDERED_AT, lines.ORDER_LINE_ID, lines.CUSTOMER_ID, products.PRODUCT_NAME, lines.QUANTITY,
                   lines.NET_REVENUE AS REVENUE, lines.SALES_CHANNEL
            FROM {PROD}.FCT_ORDER_LINES AS lines
            LEFT JOIN {PROD}.DIM_PRODUCTS AS products ON products.PRODUCT_ID = lines.PRODUCT_ID
            ORDER BY lines.ORDERED_AT DESC, lines.EVENT_KEY DESC LIMIT {LATEST_ORDERS}"""
    )


def product_daily_sales() -> pd.DataFrame:
    """Per product and sales date: bottles and revenue (one read serves every product's page)."""
    return read(
        f"""SELECT PRODUCT_ID, SALES_DATE, SUM(QUANTITY) AS UNITS, SUM(NET_REVENUE) AS REVENUE
            FROM {PROD}.FCT_ORDER_LINES GROUP BY PRODUCT_ID, SALES_DATE"""
    )


def daily_adjustments() -> pd.DataFrame:
    """Per day of the shop's calendar and kind of stock movement other than a sale: movements and bottles."""
    return read(
        f"""SELECT CONVERT_TIMEZONE(?, MOVED_AT)::DATE AS MOVED_ON, MOVEMENT_TYPE, COUNT(*) AS MOVEMENTS,
                   SUM(QUANTITY_CHANGE) AS BOTTLES
            FROM {PROD}.FCT_INVENTORY_MOVEMENTS WHERE MOVEMENT_TYPE <> 'SALE' GROUP BY MOVED_ON, MOVEMENT_TYPE""",
        (settings().shop_timezone,),
    )


def models_hold_until() -> pd.DataFrame:
    """When the newest event the models hold reached Snowflake (none before the first ELT run)."""
    return read(
        f"""SELECT MAX(INGESTION_TIME) AS HELD_UNTIL FROM (
                SELECT INGESTION_TIME FROM {STAGING}.STG_ORDER_LINES
                UNION ALL SELECT INGESTION_TIME FROM {STAGING}.STG_INVENTORY_ADJUSTMENTS)"""
    )


def stored(since: datetime | None = None) -> pd.DataFrame:
    """The worker's last commit and the events stored (since `since`, when given)."""
    if since is None:
        return read(STORED, missing=NOTHING_WRITTEN)
    return read(f"{STORED} WHERE INGESTION_TIME > ?", (since.isoformat(),), missing=NOTHING_WRITTEN)


def dead_letters() -> pd.DataFrame:
    return read(f"SELECT ERROR_TYPE, COUNT(*) AS LETTERS FROM {RAW}.DLQ_EVENTS GROUP BY ERROR_TYPE",
                missing=NO_DEAD_LETTERS_TABLE)
