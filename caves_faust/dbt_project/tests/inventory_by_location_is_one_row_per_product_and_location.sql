-- INVENTORY_BY_LOCATION has one row per (product, location): the rows returned here would be doubles.
SELECT PRODUCT_ID, LOCATION, COUNT(*) AS ROWS_FOUND
FROM {{ ref('inventory_by_location') }}
GROUP BY PRODUCT_ID, LOCATION
HAVING COUNT(*) > 1
