{{ config(materialized='table') }}

{#- var decay_family (the DAG's Param of that name): null keeps each kind's family from the table; exponential,
    logistic or period puts every kind on that family with the kind's half-life kept: logistic k = var
    logistic_k and l = ln((1 + 2k) / k) / half-life; period: day buckets weighted 0.5^(day / half-life) for
    8 half-lives, then 0 (a bounded window). -#}
{%- set family_override = var('decay_family') %}
{%- if family_override not in (none, '', 'table', 'exponential', 'logistic', 'period') %}
    {{ exceptions.raise_compiler_error("var decay_family must be table, exponential, logistic or period, got " ~ family_override) }}
{%- endif %}

{#- var half_life_overrides (the DAG's Param): {"category_id:event_type": days} ('*' = any), JSON text or a
    mapping; each entry replaces the row of that key with exponential decay at that half-life. -#}
{%- set raw_overrides = var('half_life_overrides') %}
{%- set overrides = fromjson(raw_overrides) if raw_overrides is string and raw_overrides else (raw_overrides or {}) %}
{%- for key, days in overrides.items() %}
    {%- if key.split(':') | length != 2 or days is not number or days <= 0 %}
        {{ exceptions.raise_compiler_error("var half_life_overrides: each entry must be \"category_id:event_type\": days > 0 ('*' = any), got " ~ key ~ ": " ~ days) }}
    {%- endif %}
{%- endfor %}

with defaults as (
    select * from {{ ref('decay_parameter_defaults') }}
),

fitted as (
    select * from {{ source('decay_params', 'decay_parameters_fitted') }}
),

combined as (
    {%- for key, days in overrides.items() %}
    {%- set category_id, event_type = key.split(':') %}
    select '{{ category_id | replace("'", "''") }}'::text as category_id,
        '{{ event_type | replace("'", "''") }}'::text as event_type, 'exponential'::text as family,
        {{ days }}::float8 as half_life_days, null::float8 as logistic_k, null::float8 as logistic_l,
        null::float8 as period_days, null::text as period_weights, 0 as priority, 'override' as origin
    union all
    {%- endfor %}
    select category_id, event_type, family, half_life_days, logistic_k, logistic_l, period_days, period_weights,
        1 as priority, 'fitted' as origin
    from fitted
    union all
    select category_id, event_type, family, half_life_days, logistic_k, logistic_l, period_days, period_weights,
        2 as priority, 'default' as origin
    from defaults
),

ranked as (
    select
        *,
        row_number() over (partition by category_id, event_type order by priority) as preference
    from combined
),

resolved as (
    select
        category_id,
        event_type,
        family,
        coalesce(half_life_days, {{ var('half_life_days') }}) as half_life_days,
        logistic_k,
        logistic_l,
        period_days,
        string_to_array(period_weights, ';')::float8[] as period_weights,
        origin
    from ranked
    where preference = 1
),

final as (
{%- if family_override in ('exponential', 'logistic', 'period') %}
    select
        category_id,
        event_type,
        '{{ family_override }}'::text as family,
        half_life_days,
        {%- if family_override == 'logistic' %}
        {{ var('logistic_k') }}::float8 as logistic_k,
        ln((1 + 2 * {{ var('logistic_k') }}::float8) / {{ var('logistic_k') }}::float8) / half_life_days as logistic_l,
        {%- else %}
        null::float8 as logistic_k,
        null::float8 as logistic_l,
        {%- endif %}
        {%- if family_override == 'period' %}
        1::float8 as period_days,
        array(
            select power(0.5::float8, day / half_life_days)
            from generate_series(0, ceil(8 * half_life_days)::int - 1) as day
        ) || array[0::float8] as period_weights,
        {%- else %}
        null::float8 as period_days,
        null::float8[] as period_weights,
        {%- endif %}
        origin || ', family set by var decay_family' as origin
    from resolved
{%- else %}
    select * from resolved
{%- endif %}
)

select * from final
