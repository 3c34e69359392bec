"""Every figure the dashboard reads from the warehouse, one function each, over the dbt models (PROD, STAGING)
and the raw tables the worker writes. Names and columns follow the outside contract."""

from __future__ import annotations

import pandas as pd

from caves_faust.dashboard.prod import read

PROD = "PROD"
STAGING = "STAGING"
RAW = "RAW_DATA"
LATEST_ORDERS = 15
NOTHING_WRITTEN = "Le worker n'a encore rien écrit dans Snowflake : est-il démarré ?"
NO_DEAD_LETTERS_TABLE = "Les lettres mortes ne sont pas encore copiées dans Snowflake (table DLQ_EVENTS)."


def daily_sales() -> pd.DataFrame:
    return read(f"SELECT SALES_DATE, SALES_CHANNEL, ORDERS, UNITS, REVENUE FROM {PROD}.DAILY_SALES")


def product_performance() -> pd.DataFrame:
    return read(
        f"SELECT PRODUCT_ID, PRODUCT_NAME, CATEGORY, ORDERS, UNITS_SOLD, REVENUE FROM {PROD}.PRODUCT_PERFORMANCE"
    )


def inventory_status() -> pd.DataFrame:
    return read(f"SELECT PRODUCT_ID, STOCK FROM {PROD}.INVENTORY_STATUS")


def customer_metrics() -> pd.DataFrame:
    return read(f"SELECT CUSTOMER_ID, ORDERS, REVENUE, FIRST_ORDER_AT, LAST_ORDER_AT FROM {PROD}.CUSTOMER_METRICS")


def latest_orders() -> pd.DataFrame:
    return read(
        f"""SELECT ORDERED_AT, ORDER_LINE_ID, CUSTOMER_ID, PRODUCT_NAME, QUANTITY, TOTAL_PRICE, SALES_CHANNEL
            FROM {STAGING}.STG_ORDERS ORDER BY ORDERED_AT DESC, ORDER_LINE_ID DESC LIMIT {LATEST_ORDERS}"""
    )


def product_daily_sales() -> pd.DataFrame:
    """Per product and sales date: units and revenue (one read serves every product's page)."""
    return read(
        f"""SELECT PRODUCT_ID, SALES_DATE, SUM(QUANTITY) AS UNITS, SUM(TOTAL_PRICE) AS REVENUE
            FROM {STAGING}.STG_ORDERS GROUP BY PRODUCT_ID, SALES_DATE"""
    )


def daily_adjustments() -> pd.DataFrame:
    return read(
        f"""SELECT ADJUSTMENT_DATE, ADJUSTMENT_TYPE, COUNT(*) AS ADJUSTMENTS, SUM(QUANTITY_CHANGE) AS BOTTLES
            FROM {STAGING}.STG_INVENTORY_ADJUSTMENTS GROUP BY ADJUSTMENT_DATE, ADJUSTMENT_TYPE"""
    )


def last_commit() -> pd.DataFrame:
    return read(f"SELECT MAX(INGESTION_TIME) AS LAST_COMMIT, COUNT(*) AS EVENTS FROM {RAW}.RAW_EVENTS_STREAM",
                missing=NOTHING_WRITTEN)


def dead_letters() -> pd.DataFrame:
    return read(f"SELECT ERROR_TYPE, COUNT(*) AS LETTERS FROM {RAW}.DLQ_EVENTS GROUP BY ERROR_TYPE",
                missing=NO_DEAD_LETTERS_TABLE)


def models_built() -> pd.DataFrame:
    return read(f"SELECT MAX(BUILT_AT) AS BUILT_AT FROM {PROD}.DAILY_SALES")
