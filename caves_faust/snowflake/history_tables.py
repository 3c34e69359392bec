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
