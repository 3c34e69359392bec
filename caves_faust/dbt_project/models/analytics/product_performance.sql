{{ config(materialized='incremental', unique_key='PRODUCT_ID', incremental_strategy='delete+insert',
          tmp_relation_type='transient') }}

-- Per product, all time, history and stream together (FCT_SALES); products never ordered (only adjusted) show
-- zeros. Name and category from the product's latest order line, else from DIM_PRODUCTS. Incremental: a build
-- recounts, in full, only the products of the facts built since it last read them, and products new to it.
WITH changed AS (
    {{ changed_keys('PRODUCT_ID', 'REPLACED_PRODUCT_ID') }}
    UNION
    SELECT PRODUCT_ID FROM {{ ref('dim_products') }}
    {% if is_incremental() %}
    WHERE PRODUCT_ID NOT IN (SELECT PRODUCT_ID FROM {{ this }})
    {% endif %}
),

latest_line AS (
    SELECT lines.PRODUCT_ID, lines.PRODUCT_NAME, lines.CATEGORY
    FROM {{ ref('fct_sales') }} AS lines
    JOIN changed ON changed.PRODUCT_ID = lines.PRODUCT_ID
    QUALIFY ROW_NUMBER() OVER (
        PARTITION BY lines.PRODUCT_ID
        ORDER BY lines.ORDERED_AT DESC, lines.SOURCE_TOPIC DESC NULLS LAST, lines.SOURCE_PARTITION DESC NULLS LAST,
                 lines.SOURCE_OFFSET DESC NULLS LAST
    ) = 1
),

totals AS (
    SELECT lines.PRODUCT_ID, COUNT(*) AS ORDERS, SUM(lines.QUANTITY) AS UNITS, SUM(lines.NET_REVENUE) AS REVENUE
    FROM {{ ref('fct_sales') }} AS lines
    JOIN changed ON changed.PRODUCT_ID = lines.PRODUCT_ID
    GROUP BY lines.PRODUCT_ID
)

SELECT
    changed.PRODUCT_ID,
    COALESCE(latest_line.PRODUCT_NAME, products.PRODUCT_NAME) AS PRODUCT_NAME,
    COALESCE(latest_line.CATEGORY, products.CATEGORY) AS CATEGORY,
    COALESCE(totals.ORDERS, 0) AS ORDERS,
    COALESCE(totals.UNITS, 0)::INTEGER AS UNITS_SOLD,
    COALESCE(totals.REVENUE, 0)::NUMBER(14, 2) AS REVENUE,
    {{ facts_built_at() }} AS FACTS_BUILT_AT
FROM changed
LEFT JOIN latest_line ON latest_line.PRODUCT_ID = changed.PRODUCT_ID
LEFT JOIN totals ON totals.PRODUCT_ID = changed.PRODUCT_ID
LEFT JOIN {{ ref('dim_products') }} AS products ON products.PRODUCT_ID = changed.PRODUCT_ID
