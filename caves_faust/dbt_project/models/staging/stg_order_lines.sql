{{ config(materialized='incremental', incremental_strategy='append') }}

WITH events AS (
    SELECT
        {{ source_position_columns() }},
        EVENT_CONTENT:order_line_id::VARCHAR AS ORDER_LINE_ID,
        EVENT_CONTENT:customer_id::INTEGER AS CUSTOMER_ID,
        EVENT_CONTENT:product_id::INTEGER AS PRODUCT_ID,
        EVENT_CONTENT:product_name::VARCHAR AS PRODUCT_NAME,
        EVENT_CONTENT:category::VARCHAR AS CATEGORY,
        EVENT_CONTENT:quantity::INTEGER AS QUANTITY,
        EVENT_CONTENT:unit_price::NUMBER(12, 2) AS UNIT_PRICE,
        EVENT_CONTENT:discount::NUMBER(5, 4) AS DISCOUNT,
        EVENT_CONTENT:total_price::NUMBER(12, 2) AS TOTAL_PRICE,
        EVENT_CONTENT:bottle_size_liters::NUMBER(6, 3) AS BOTTLE_SIZE_LITERS,
        EVENT_CONTENT:sales_channel::VARCHAR AS SALES_CHANNEL,
        TRY_CAST(EVENT_CONTENT:event_timestamp::VARCHAR AS TIMESTAMP_TZ) AS EVENT_TIMESTAMP
    FROM {{ source('raw', 'RAW_EVENTS_STREAM') }}
    WHERE EVENT_TYPE = 'ORDER_CREATED'
)

SELECT events.*
FROM events
{{ past_stored_positions('events') }}
