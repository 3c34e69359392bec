-- An order line both loaded from history and streamed counts once, as its streamed copy: the rows returned are the
-- history facts whose line was streamed too.
SELECT facts.ORDER_LINE_ID
FROM {{ ref('fct_sales') }} AS facts
JOIN {{ ref('stg_order_lines') }} AS streamed ON streamed.ORDER_LINE_ID = facts.ORDER_LINE_ID
WHERE facts.SOURCE = 'history'
