-- One row per order line, with what it earned (NET_REVENUE, DISCOUNT_AMOUNT: macros/sales_lines.sql, as FCT_SALES).
WITH lines AS (
    SELECT
        *,
        COALESCE(EVENT_TIMESTAMP, KAFKA_TIMESTAMP) AS ORDERED_AT
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
    {{ net_revenue('lines') }} AS NET_REVENUE,
    {{ discount_amount('lines') }} AS DISCOUNT_AMOUNT,
    ORDERED_AT,
    {{ shop_date('ORDERED_AT') }} AS SALES_DATE
FROM lines
