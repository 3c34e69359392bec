-- Per (product, location): the stock (adjustments at their warehouse's location minus orders at their sales
-- channel's, STOCK_LOCATIONS), the bottles sold there over the last 30 shop days (Kafka time, today included) and
-- the reorder point, as the worker keeps them (stock/locations.py): the worker's `locations` of the same product
-- sum to its stock, and so do these rows.
WITH movements AS (
    SELECT PRODUCT_ID, SALES_CHANNEL AS PLACE, -QUANTITY AS CHANGE, QUANTITY AS SOLD, KAFKA_TIMESTAMP AS MOVED_AT
    FROM {{ ref('stg_order_lines') }}
    UNION ALL
    SELECT PRODUCT_ID, WAREHOUSE AS PLACE, QUANTITY_CHANGE AS CHANGE, 0 AS SOLD, KAFKA_TIMESTAMP AS MOVED_AT
    FROM {{ ref('stg_inventory_adjustments') }}
),

located AS (
    SELECT
        PRODUCT_ID,
        {{ stock_location('PLACE') }} AS LOCATION,
        CHANGE,
        IFF({{ shop_date('MOVED_AT') }} > DATEADD(DAY, -30, {{ shop_date('CURRENT_TIMESTAMP()') }}), SOLD, 0) AS SOLD_30
    FROM movements
),

summed AS (
    SELECT
        PRODUCT_ID,
        LOCATION,
        SUM(CHANGE)::INTEGER AS STOCK,
        SUM(SOLD_30)::INTEGER AS UNITS_SOLD_LAST_30_DAYS
    FROM located
    GROUP BY PRODUCT_ID, LOCATION
)

SELECT
    *,
    GREATEST({{ var('stock_reorder_min_bottles') }},
             CEIL(UNITS_SOLD_LAST_30_DAYS * {{ var('stock_lead_days') }} / 30.0))::INTEGER AS REORDER_POINT,
    STOCK <= GREATEST({{ var('stock_reorder_min_bottles') }},
                      CEIL(UNITS_SOLD_LAST_30_DAYS * {{ var('stock_lead_days') }} / 30.0)) AS AT_OR_BELOW_REORDER_POINT
FROM summed
