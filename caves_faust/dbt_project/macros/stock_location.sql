{#- The location a sales channel or warehouse name counts at (STOCK_LOCATIONS); others at 'non affecté'. -#}
{% macro stock_location(place) -%}
    CASE
    {%- for name, location in var("stock_locations").items() %}
        WHEN {{ place }} = '{{ name | replace("'", "''") }}' THEN '{{ location | replace("'", "''") }}'
    {%- endfor %}
        ELSE 'non affecté'
    END
{%- endmacro %}
