-- One row per order line, with what it earned. NET_REVENUE is what the customer paid: TOTAL_PRICE, else the
-- quantity at the unit price less the discount; DISCOUNT_AMOUNT what the discount took off the list price.
WITH lines AS (
    SELECT
        *,
        COALESCE(EVENT_TIMESTAMP, KAFKA_TIMESTAMP) AS ORDERED_AT,
        ROUND(QUANTITY * UNIT_PRICE, 2) AS GROSS_REVENUE
    FROM {{ ref('stg_order_lines') }}
)

SELECT
    EVENT_KEY,
    SOURCE_TOPIC,
    SOURCE_PARTITION,
    SOURCE_OFFSET,
    ORDER_LINE_ID,
    CUSTOMER_ID,
    PRODUCT_ID,
    CATEGORY,
    SALES_CHANNEL,
    QUANTITY,
    UNIT_PRICE,
    COALESCE(DISCOUNT, 0) AS DISCOUNT,
    COALESCE(TOTAL_PRICE, ROUND(GROSS_REVENUE * (1 - COALESCE(DISCOUNT, 0)), 2), 0) AS NET_REVENUE,
    COALESCE(GREATEST(GROSS_REVENUE - COALESCE(TOTAL_PRICE, ROUND(GROSS_REVENUE * (1 - COALESCE(DISCOUNT, 0)), 2)), 0), 0)
        AS DISCOUNT_AMOUNT,
    ORDERED_AT,
    {{ shop_date('ORDERED_AT') }} AS SALES_DATE
FROM lines
