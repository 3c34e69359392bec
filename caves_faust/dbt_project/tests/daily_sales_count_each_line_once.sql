-- DAILY_SALES, built incrementally, equals its recount from the facts: no day and channel counted twice, missed or
-- left stale. The rows returned are the days and channels where they differ.
WITH recount AS (
    SELECT SALES_DATE, SALES_CHANNEL, COUNT(*) AS ORDERS, SUM(QUANTITY)::INTEGER AS UNITS,
           SUM(NET_REVENUE)::NUMBER(14, 2) AS REVENUE
    FROM {{ ref('fct_sales') }}
    GROUP BY SALES_DATE, SALES_CHANNEL
)

SELECT recount.SALES_DATE, recount.SALES_CHANNEL, daily.SALES_DATE AS DAILY_SALES_DATE
FROM recount
FULL OUTER JOIN {{ ref('daily_sales') }} AS daily
    ON daily.SALES_DATE = recount.SALES_DATE AND daily.SALES_CHANNEL IS NOT DISTINCT FROM recount.SALES_CHANNEL
WHERE daily.ORDERS IS DISTINCT FROM recount.ORDERS OR daily.UNITS IS DISTINCT FROM recount.UNITS
   OR daily.REVENUE IS DISTINCT FROM recount.REVENUE
