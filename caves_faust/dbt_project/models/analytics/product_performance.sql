-- Per product, all time; products never ordered show zeros.
SELECT
    products.PRODUCT_ID,
    products.PRODUCT_NAME,
    products.CATEGORY,
    COUNT(lines.EVENT_KEY) AS ORDERS,
    COALESCE(SUM(lines.QUANTITY), 0)::INTEGER AS UNITS_SOLD,
    COALESCE(SUM(lines.NET_REVENUE), 0)::NUMBER(14, 2) AS REVENUE
FROM {{ ref('dim_products') }} AS products
LEFT JOIN {{ ref('fct_order_lines') }} AS lines ON lines.PRODUCT_ID = products.PRODUCT_ID
GROUP BY products.PRODUCT_ID, products.PRODUCT_NAME, products.CATEGORY
