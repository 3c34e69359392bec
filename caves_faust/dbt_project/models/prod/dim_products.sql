-- Every product seen in an event; name, category, unit price and bottle size from its latest order line (none
-- when it was only ever adjusted).
WITH latest_line AS (
    SELECT PRODUCT_ID, PRODUCT_NAME, CATEGORY, UNIT_PRICE, BOTTLE_SIZE_LITERS
    FROM {{ ref('stg_order_lines') }}
    QUALIFY ROW_NUMBER() OVER (
        PARTITION BY PRODUCT_ID
        ORDER BY COALESCE(EVENT_TIMESTAMP, KAFKA_TIMESTAMP) DESC, SOURCE_TOPIC DESC, SOURCE_PARTITION DESC, SOURCE_OFFSET DESC
    ) = 1
),

products AS (
    SELECT PRODUCT_ID FROM {{ ref('stg_order_lines') }}
    UNION
    SELECT PRODUCT_ID FROM {{ ref('stg_inventory_adjustments') }}
)

SELECT
    products.PRODUCT_ID,
    latest_line.PRODUCT_NAME,
    latest_line.CATEGORY,
    latest_line.UNIT_PRICE,
    latest_line.BOTTLE_SIZE_LITERS
FROM products
LEFT JOIN latest_line ON latest_line.PRODUCT_ID = products.PRODUCT_ID
