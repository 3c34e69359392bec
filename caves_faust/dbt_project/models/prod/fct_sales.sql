{{ config(materialized='incremental', unique_key='ORDER_LINE_ID', incremental_strategy='delete+insert',
          tmp_relation_type='transient') }}

-- One row per order line, history and stream together: a line in both (same ORDER_LINE_ID) counts once, the streamed
-- copy winning. Incremental: a build writes only the streamed lines past the source positions it holds and the
-- history lines it lacks, so it writes O(new lines); a line it already held (a history line now streamed, a line
-- streamed twice) is replaced by the new copy, which carries the old copy's day, channel, product and customer
-- (REPLACED_*) so that the aggregates recount those too. BUILT_AT says which build wrote a row: the aggregates
-- recount the keys of the rows built since they last read.
WITH stream AS (
    SELECT
        lines.ORDER_LINE_ID, 'stream' AS SOURCE, 1 AS PRECEDENCE, lines.EVENT_KEY, lines.SOURCE_TOPIC,
        lines.SOURCE_PARTITION, lines.SOURCE_OFFSET, lines.CUSTOMER_ID, lines.PRODUCT_ID, lines.PRODUCT_NAME,
        lines.CATEGORY, lines.SALES_CHANNEL, lines.QUANTITY, lines.UNIT_PRICE, lines.DISCOUNT, lines.TOTAL_PRICE,
        COALESCE(lines.EVENT_TIMESTAMP, lines.KAFKA_TIMESTAMP) AS ORDERED_AT
    FROM {{ ref('stg_order_lines') }} AS lines
    {{ past_stored_positions('lines') }}
),

history AS (
    SELECT
        ORDER_LINE_ID, 'history' AS SOURCE, 2 AS PRECEDENCE, NULL AS EVENT_KEY, NULL AS SOURCE_TOPIC,
        NULL AS SOURCE_PARTITION, NULL AS SOURCE_OFFSET, CUSTOMER_ID, PRODUCT_ID, PRODUCT_NAME, CATEGORY,
        SALES_CHANNEL, QUANTITY, UNIT_PRICE, DISCOUNT, TOTAL_PRICE, ORDERED_AT
    FROM {{ ref('stg_history_sales') }} AS past
    WHERE NOT EXISTS (SELECT 1 FROM {{ ref('stg_order_lines') }} AS streamed
                      WHERE streamed.ORDER_LINE_ID = past.ORDER_LINE_ID)
    {% if is_incremental() %}
      AND NOT EXISTS (SELECT 1 FROM {{ this }} AS held WHERE held.ORDER_LINE_ID = past.ORDER_LINE_ID)
    {% endif %}
),

candidates AS (
    SELECT * FROM stream
    UNION ALL
    SELECT * FROM history
),

lines AS (
    SELECT *
    FROM candidates
    QUALIFY ROW_NUMBER() OVER (
        PARTITION BY ORDER_LINE_ID
        ORDER BY PRECEDENCE, ORDERED_AT DESC, SOURCE_TOPIC DESC, SOURCE_PARTITION DESC, SOURCE_OFFSET DESC
    ) = 1
)

SELECT
    lines.ORDER_LINE_ID,
    lines.SOURCE,
    lines.EVENT_KEY,
    lines.SOURCE_TOPIC,
    lines.SOURCE_PARTITION,
    lines.SOURCE_OFFSET,
    lines.CUSTOMER_ID,
    lines.PRODUCT_ID,
    lines.PRODUCT_NAME,
    lines.CATEGORY,
    lines.SALES_CHANNEL,
    lines.QUANTITY,
    lines.UNIT_PRICE,
    COALESCE(lines.DISCOUNT, 0) AS DISCOUNT,
    {{ net_revenue('lines') }} AS NET_REVENUE,
    {{ discount_amount('lines') }} AS DISCOUNT_AMOUNT,
    lines.ORDERED_AT,
    {{ shop_date('lines.ORDERED_AT') }} AS SALES_DATE,
    {% if is_incremental() %}
    held.SALES_DATE AS REPLACED_SALES_DATE,
    held.SALES_CHANNEL AS REPLACED_SALES_CHANNEL,
    held.PRODUCT_ID AS REPLACED_PRODUCT_ID,
    held.CUSTOMER_ID AS REPLACED_CUSTOMER_ID,
    {% else %}
    NULL::DATE AS REPLACED_SALES_DATE,
    NULL::VARCHAR AS REPLACED_SALES_CHANNEL,
    NULL::INTEGER AS REPLACED_PRODUCT_ID,
    NULL::INTEGER AS REPLACED_CUSTOMER_ID,
    {% endif %}
    -- The warehouse's clock, not the build host's: builds from hosts whose clocks differ still order their rows.
    CURRENT_TIMESTAMP()::TIMESTAMP_TZ AS BUILT_AT
FROM lines
{% if is_incremental() %}
LEFT JOIN {{ this }} AS held ON held.ORDER_LINE_ID = lines.ORDER_LINE_ID
{% endif %}
