"""BATCH_DATA.SALES, the shop's past sales loaded from history files, and every statement on it (values bound, never
formatted in). Its columns are the file's `sales` table's, plus when and from which file each row was loaded."""

HISTORY_SCHEMA = "BATCH_DATA"
HISTORY_TABLE = f"{HISTORY_SCHEMA}.SALES"

HISTORY_DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {HISTORY_SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (
        ORDER_LINE_ID INTEGER NOT NULL,
        ORDERED_AT TIMESTAMP_TZ NOT NULL,
        CUSTOMER_ID INTEGER NOT NULL,
        PRODUCT_ID INTEGER NOT NULL,
        PRODUCT_NAME VARCHAR,
        CATEGORY VARCHAR,
        QUANTITY INTEGER NOT NULL,
        UNIT_PRICE FLOAT,
        DISCOUNT FLOAT,
        TOTAL_PRICE FLOAT,
        BOTTLE_SIZE_LITERS FLOAT,
        SALES_CHANNEL VARCHAR,
        LOADED_AT TIMESTAMP_LTZ DEFAULT CURRENT_TIMESTAMP(),
        LOADED_FROM VARCHAR
    )""",
]

# One batch of rows bound as one JSON array of arrays (each row's values in the file's column order: an array
# flattens faster than objects), a small statement whatever the batch, inserted only where its order_line_id is not
# in the table yet: loading a file again, an overlapping file, or again after a kill leaves each order line once.
# Run in a transaction per batch: a batch is in the table whole or not at all.
INSERT_MISSING_SALES = f"""INSERT INTO {HISTORY_TABLE} (ORDER_LINE_ID, ORDERED_AT, CUSTOMER_ID, PRODUCT_ID,
        PRODUCT_NAME, CATEGORY, QUANTITY, UNIT_PRICE, DISCOUNT, TOTAL_PRICE, BOTTLE_SIZE_LITERS, SALES_CHANNEL,
        LOADED_FROM)
    SELECT value[0]::INTEGER, value[1]::TIMESTAMP_TZ, value[2]::INTEGER, value[3]::INTEGER, value[4]::VARCHAR,
           value[5]::VARCHAR, value[6]::INTEGER, value[7]::FLOAT, value[8]::FLOAT, value[9]::FLOAT, value[10]::FLOAT,
           value[11]::VARCHAR, ?
    FROM TABLE(FLATTEN(input => PARSE_JSON(?)))
    WHERE NOT EXISTS (SELECT 1 FROM {HISTORY_TABLE} AS loaded WHERE loaded.ORDER_LINE_ID = value[0]::INTEGER)"""

# The sales tables the layers build incrementally since history came in (issue 27). One left by an earlier build,
# rebuilt whole at each build, lacks FACTS_BUILT_AT: dbt's incremental build cannot read it, so `elt` drops it first
# and dbt builds it whole once (it only ever derives from staging).
LAYERS_SCHEMA = "PROD"
INCREMENTAL_SALES_TABLES = ("DAILY_SALES", "PRODUCT_PERFORMANCE", "CUSTOMER_METRICS")
_NAMES = ", ".join(f"'{name}'" for name in INCREMENTAL_SALES_TABLES)
SALES_TABLES_OF_OLD_LAYOUT = f"""SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES AS t
    WHERE TABLE_SCHEMA = '{LAYERS_SCHEMA}' AND TABLE_NAME IN ({_NAMES})
      AND NOT EXISTS (SELECT 1 FROM INFORMATION_SCHEMA.COLUMNS AS c WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA
                      AND c.TABLE_NAME = t.TABLE_NAME AND c.COLUMN_NAME = 'FACTS_BUILT_AT')"""
# Spelled out, each a constant statement (values are never formatted into SQL: tests/reliability/test_bad_input.py).
DROP_SALES_TABLE = {
    "DAILY_SALES": f"DROP TABLE IF EXISTS {LAYERS_SCHEMA}.DAILY_SALES",
    "PRODUCT_PERFORMANCE": f"DROP TABLE IF EXISTS {LAYERS_SCHEMA}.PRODUCT_PERFORMANCE",
    "CUSTOMER_METRICS": f"DROP TABLE IF EXISTS {LAYERS_SCHEMA}.CUSTOMER_METRICS",
}
