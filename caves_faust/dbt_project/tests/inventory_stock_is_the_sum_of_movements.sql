-- INVENTORY_STATUS's stock (adjustments minus units ordered) equals the sum of the product's movements: the rows
-- returned are the products where they differ.
WITH movements AS (
    SELECT PRODUCT_ID, SUM(QUANTITY_CHANGE) AS STOCK
    FROM {{ ref('fct_inventory_movements') }}
    GROUP BY PRODUCT_ID
)

SELECT status.PRODUCT_ID, status.STOCK, movements.STOCK AS SUM_OF_MOVEMENTS
FROM {{ ref('inventory_status') }} AS status
FULL OUTER JOIN movements ON movements.PRODUCT_ID = status.PRODUCT_ID
WHERE status.STOCK IS DISTINCT FROM movements.STOCK
