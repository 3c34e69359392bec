-- Every change of a product's stock: adjustments (their QUANTITY_CHANGE) and sales (minus the units ordered).
SELECT
    EVENT_KEY,
    PRODUCT_ID,
    ADJUSTMENT_TYPE AS MOVEMENT_TYPE,
    QUANTITY_CHANGE,
    WAREHOUSE,
    COALESCE(EVENT_TIMESTAMP, KAFKA_TIMESTAMP) AS MOVED_AT
FROM {{ ref('stg_inventory_adjustments') }}
UNION ALL
SELECT
    EVENT_KEY,
    PRODUCT_ID,
    'SALE' AS MOVEMENT_TYPE,
    -QUANTITY AS QUANTITY_CHANGE,
    NULL AS WAREHOUSE,
    ORDERED_AT AS MOVED_AT
FROM {{ ref('fct_order_lines') }}
