{{ config(materialized='incremental', unique_key='CUSTOMER_ID', incremental_strategy='delete+insert',
          tmp_relation_type='transient') }}

-- Per customer, all time, history and stream together (FCT_SALES). Incremental: a build recounts, in full, only the
-- customers of the facts built since it last read them.
WITH changed AS (
    {{ changed_keys('CUSTOMER_ID', 'REPLACED_CUSTOMER_ID') }}
)

SELECT
    lines.CUSTOMER_ID,
    COUNT(*) AS ORDERS,
    SUM(lines.QUANTITY)::INTEGER AS UNITS,
    SUM(lines.NET_REVENUE)::NUMBER(14, 2) AS REVENUE,
    MIN(lines.ORDERED_AT) AS FIRST_ORDER_AT,
    MAX(lines.ORDERED_AT) AS LAST_ORDER_AT,
    {{ facts_built_at() }} AS FACTS_BUILT_AT
FROM {{ ref('fct_sales') }} AS lines
JOIN changed ON changed.CUSTOMER_ID = lines.CUSTOMER_ID
GROUP BY lines.CUSTOMER_ID
