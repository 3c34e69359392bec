{#- What a sale earned, from a row (`line`, its alias) with QUANTITY, UNIT_PRICE, DISCOUNT and TOTAL_PRICE: NET_REVENUE is what the
    customer paid (TOTAL_PRICE, else the quantity at the unit price less the discount), DISCOUNT_AMOUNT what the
    discount took off the list price. -#}
{% macro net_revenue(line) -%}
    COALESCE({{ line }}.TOTAL_PRICE,
             ROUND(ROUND({{ line }}.QUANTITY * {{ line }}.UNIT_PRICE, 2) * (1 - COALESCE({{ line }}.DISCOUNT, 0)), 2), 0)
{%- endmacro %}

{% macro discount_amount(line) -%}
    COALESCE(GREATEST(ROUND({{ line }}.QUANTITY * {{ line }}.UNIT_PRICE, 2) - {{ net_revenue(line) }}, 0), 0)
{%- endmacro %}

{#- The facts FCT_SALES changed since a model last read it: those built after the newest FACTS_BUILT_AT the model
    holds (all of them when it holds none). -#}
{% macro changed_sales() -%}
    {{ ref('fct_sales') }}
    WHERE BUILT_AT > (SELECT COALESCE(MAX(FACTS_BUILT_AT), '1970-01-01 00:00:00 +00:00'::TIMESTAMP_TZ) FROM {{ this }})
{%- endmacro %}

{#- The keys (`keys`: columns of FCT_SALES) an aggregate recounts: on an incremental build, those of the facts built
    since it last read them and those of the history lines they replaced (`replaced`, the same keys' REPLACED_*
    columns); on a full build, every key. -#}
{% macro changed_keys(keys, replaced) -%}
    {% if is_incremental() %}
    SELECT {{ keys }} FROM {{ changed_sales() }}
    UNION
    SELECT {{ replaced }} FROM {{ changed_sales() }} AND {{ replaced.split(',')[0] }} IS NOT NULL
    {% else %}
    SELECT DISTINCT {{ keys }} FROM {{ ref('fct_sales') }}
    {% endif %}
{%- endmacro %}

{#- The newest BUILT_AT of FCT_SALES: what a model has read up to, stored in its rows as FACTS_BUILT_AT. -#}
{% macro facts_built_at() -%}
    (SELECT MAX(BUILT_AT) FROM {{ ref('fct_sales') }})
{%- endmacro %}
