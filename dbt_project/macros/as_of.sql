{#- The day interest is computed for: var('as_of'), else the day after the latest accepted event. -#}
{% macro as_of_date() %}
    {%- if var('as_of') -%}
        date '{{ var("as_of") }}'
    {%- else -%}
        (select (max(event_ts) at time zone 'UTC')::date + 1 from {{ ref('stg_behaviour__events') }})
    {%- endif -%}
{% endmacro %}

{% macro as_of_start_date() %}
    {%- if var('as_of_start') -%}
        date '{{ var("as_of_start") }}'
    {%- else -%}
        {{ as_of_date() }}
    {%- endif -%}
{% endmacro %}
