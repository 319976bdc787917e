{# Converts an integer amount in cents to dollars as decimal(18, 2). #}
{% macro cents_to_dollars(column_name) -%}
    cast({{ column_name }} / 100.0 as decimal(18, 2))
{%- endmacro %}
