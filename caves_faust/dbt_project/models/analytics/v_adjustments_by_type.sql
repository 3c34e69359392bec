{{ config(materialized='view') }}
-- Per adjustment type, all time (was RAW_DATA.V_ADJUSTMENTS_BY_TYPE, created by the worker).
SELECT ADJUSTMENT_TYPE, COUNT(*) AS ADJUSTMENT_COUNT, SUM(QUANTITY_CHANGE)::INTEGER AS NET_QUANTITY_CHANGE
FROM {{ ref('stg_inventory_adjustments') }}
GROUP BY ADJUSTMENT_TYPE
