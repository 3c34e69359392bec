{{ config(materialized='incremental', unique_key='SALES_KEY', incremental_strategy='delete+insert',
          tmp_relation_type='transient',
          post_hook="DELETE FROM {{ this }} WHERE ORDERS = 0") }}

-- Per day (in the shop's time zone) and sales channel, history and stream together (FCT_SALES). Incremental: a
-- build recounts only the days and channels of the facts built since it last read them (a streamed copy replacing
-- a history line: both days), in full, so a late or replayed event lands in its day once; a day and channel left
-- with no sale is written with zeros, then deleted.
WITH changed AS (
    {{ changed_keys('SALES_DATE, SALES_CHANNEL', 'REPLACED_SALES_DATE, REPLACED_SALES_CHANNEL') }}
)

SELECT
    changed.SALES_DATE::VARCHAR || '/' || COALESCE(changed.SALES_CHANNEL, '') AS SALES_KEY,
    changed.SALES_DATE,
    changed.SALES_CHANNEL,
    COUNT(lines.ORDER_LINE_ID) AS ORDERS,
    COALESCE(SUM(lines.QUANTITY), 0)::INTEGER AS UNITS,
    COALESCE(SUM(lines.NET_REVENUE), 0)::NUMBER(14, 2) AS REVENUE,
    COALESCE(SUM(lines.DISCOUNT_AMOUNT), 0)::NUMBER(14, 2) AS DISCOUNT_AMOUNT,
    COUNT_IF(lines.SOURCE = 'history') AS HISTORY_ORDERS,
    {{ facts_built_at() }} AS FACTS_BUILT_AT
FROM changed
LEFT JOIN {{ ref('fct_sales') }} AS lines
    ON lines.SALES_DATE = changed.SALES_DATE AND lines.SALES_CHANNEL IS NOT DISTINCT FROM changed.SALES_CHANNEL
GROUP BY changed.SALES_DATE, changed.SALES_CHANNEL
