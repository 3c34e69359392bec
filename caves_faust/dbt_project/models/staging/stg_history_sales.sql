{{ config(materialized='view') }}

-- One row per order line loaded from a history file (`history load`), typed like the streamed order lines.
SELECT
    ORDER_LINE_ID::VARCHAR AS ORDER_LINE_ID,
    CUSTOMER_ID,
    PRODUCT_ID,
    PRODUCT_NAME,
    CATEGORY,
    QUANTITY,
    UNIT_PRICE::NUMBER(12, 2) AS UNIT_PRICE,
    DISCOUNT::NUMBER(5, 4) AS DISCOUNT,
    TOTAL_PRICE::NUMBER(12, 2) AS TOTAL_PRICE,
    BOTTLE_SIZE_LITERS::NUMBER(6, 3) AS BOTTLE_SIZE_LITERS,
    SALES_CHANNEL,
    ORDERED_AT,
    LOADED_AT,
    LOADED_FROM
FROM {{ source('batch', 'SALES') }}
