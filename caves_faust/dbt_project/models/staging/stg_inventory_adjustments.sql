{{ config(materialized='incremental', incremental_strategy='append') }}

WITH events AS (
    SELECT
        {{ source_position_columns() }},
        EVENT_CONTENT:event_id::VARCHAR AS EVENT_ID,
        EVENT_CONTENT:product_id::INTEGER AS PRODUCT_ID,
        EVENT_CONTENT:quantity_change::INTEGER AS QUANTITY_CHANGE,
        EVENT_CONTENT:adjustment_type::VARCHAR AS ADJUSTMENT_TYPE,
        EVENT_CONTENT:warehouse::VARCHAR AS WAREHOUSE,
        EVENT_CONTENT:batch_number::VARCHAR AS BATCH_NUMBER,
        TRY_CAST(EVENT_CONTENT:event_timestamp::VARCHAR AS TIMESTAMP_TZ) AS EVENT_TIMESTAMP
    FROM {{ source('raw', 'RAW_EVENTS_STREAM') }}
    WHERE EVENT_TYPE = 'INVENTORY_ADJUSTED'
)

SELECT events.*
FROM events
{{ past_stored_positions('events') }}
