-- Per product: STOCK is the adjustments minus the units ordered, all time (the worker's running stock, from the
-- warehouse); then what a buyer looks at: the last movement, the units sold over the last 7 days and how many days
-- the stock lasts at that pace (none when nothing sold; 0 when nothing is left).
WITH adjusted AS (
    SELECT PRODUCT_ID, SUM(QUANTITY_CHANGE)::INTEGER AS UNITS, MAX(COALESCE(EVENT_TIMESTAMP, KAFKA_TIMESTAMP)) AS LAST_AT
    FROM {{ ref('stg_inventory_adjustments') }}
    GROUP BY PRODUCT_ID
),

ordered AS (
    SELECT
        PRODUCT_ID,
        SUM(QUANTITY)::INTEGER AS UNITS,
        SUM(IFF(ORDERED_AT >= DATEADD(DAY, -7, CURRENT_TIMESTAMP()), QUANTITY, 0))::INTEGER AS UNITS_LAST_7_DAYS,
        MAX(ORDERED_AT) AS LAST_AT
    FROM {{ ref('fct_order_lines') }}
    GROUP BY PRODUCT_ID
),

stock AS (
    SELECT
        products.PRODUCT_ID,
        products.PRODUCT_NAME,
        products.CATEGORY,
        COALESCE(adjusted.UNITS, 0) - COALESCE(ordered.UNITS, 0) AS STOCK,
        COALESCE(adjusted.UNITS, 0) AS UNITS_ADJUSTED,
        COALESCE(ordered.UNITS, 0) AS UNITS_ORDERED,
        COALESCE(ordered.UNITS_LAST_7_DAYS, 0) AS UNITS_SOLD_LAST_7_DAYS,
        GREATEST(COALESCE(adjusted.LAST_AT, ordered.LAST_AT), COALESCE(ordered.LAST_AT, adjusted.LAST_AT))
            AS LAST_MOVEMENT_AT
    FROM {{ ref('dim_products') }} AS products
    LEFT JOIN adjusted ON adjusted.PRODUCT_ID = products.PRODUCT_ID
    LEFT JOIN ordered ON ordered.PRODUCT_ID = products.PRODUCT_ID
)

SELECT
    *,
    CASE
        WHEN STOCK <= 0 THEN 0
        WHEN UNITS_SOLD_LAST_7_DAYS > 0 THEN ROUND(STOCK / (UNITS_SOLD_LAST_7_DAYS / 7.0), 1)
    END AS DAYS_OF_COVER
FROM stock
