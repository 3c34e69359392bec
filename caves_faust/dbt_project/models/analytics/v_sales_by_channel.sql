{{ config(materialized='view') }}
-- Per sales channel, all time (was RAW_DATA.V_SALES_BY_CHANNEL, created by the worker).
SELECT SALES_CHANNEL, COUNT(*) AS ORDER_COUNT, SUM(QUANTITY)::INTEGER AS UNITS_SOLD, SUM(NET_REVENUE)::NUMBER(14, 2) AS REVENUE
FROM {{ ref('fct_sales') }}
GROUP BY SALES_CHANNEL
