{#- The calendar date of a moment in the shop's time zone (SHOP_TIMEZONE). -#}
{% macro shop_date(moment) -%}
    CONVERT_TIMEZONE('{{ var("shop_timezone") }}', {{ moment }})::DATE
{%- endmacro %}
