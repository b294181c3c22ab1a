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

{#- The same days as instants: midnight UTC, the moment interest is computed at. -#}
{% macro as_of_ts() -%}
    ({{ as_of_date() }}::timestamp at time zone 'UTC')
{%- endmacro %}

{% macro as_of_start_ts() -%}
    ({{ as_of_start_date() }}::timestamp at time zone 'UTC')
{%- endmacro %}

{#- One row per day of the run's window (as_of_start .. as_of), column as_of at midnight UTC. -#}
{% macro as_of_days() -%}
    select (day::date::timestamp at time zone 'UTC') as as_of
    from generate_series({{ as_of_start_date() }}, {{ as_of_date() }}, interval '1 day') as day
{%- endmacro %}

{#- Days from instant `earlier` to instant `later` (float8). date_part on the interval is float8 arithmetic:
    2x faster than extract(epoch ...), which is numeric since PostgreSQL 14, cast to float8 (~13 ms vs 26 ms
    per 100k rows); the two differ by at most a unit in the last place. -#}
{% macro age_days(later, earlier) -%}
    date_part('epoch', {{ later }} - {{ earlier }}) / 86400.0
{%- endmacro %}
