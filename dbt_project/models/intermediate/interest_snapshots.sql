-- depends_on: {{ ref('int_event_kind_parameters') }}
-- depends_on: {{ ref('int_decay_parameters') }}
-- depends_on: {{ ref('event_type_weights') }}
{{ config(materialized='incremental', unique_key='as_of', incremental_strategy='delete+insert', indexes=[{'columns': ['as_of']}]) }}

{%- set plan = interest_snapshot_plan() %}
{%- set base_ts = "(date '" ~ plan.base_day ~ "'::timestamp at time zone 'UTC')" if plan.base_day else none %}

{#- The staged events are read by ref in each branch (not through one shared CTE, which PostgreSQL would
    materialise) so that the load_id and event_ts indexes find just the uncounted events. #}
with kinds as (
    select * from {{ ref('int_event_kind_parameters') }}
),

target_days as (
    {#- One day (the daily case) as a constant: PostgreSQL would re-run generate_series for every event. #}
    {%- if plan.first_day == plan.last_day %}
    select (date '{{ plan.first_day }}'::timestamp at time zone 'UTC') as as_of
    {%- else %}
    select (day::date::timestamp at time zone 'UTC') as as_of
    from generate_series(date '{{ plan.first_day }}', date '{{ plan.last_day }}', interval '1 day') as day
    {%- endif %}
),

{% if plan.base_day %}
carried as (
    select
        target_days.as_of,
        base.user_id,
        base.category_id,
        base.event_type,
        case
            when base.interest < 1e-290
                or extract(epoch from target_days.as_of - {{ base_ts }})::float8 / 86400.0 / kinds.half_life_days > 1000
                then 0::float8
            else base.interest * power(
                0.5::float8, extract(epoch from target_days.as_of - {{ base_ts }})::float8 / 86400.0 / kinds.half_life_days)
        end as interest,
        base.event_count,
        base.last_event_ts
    from {{ this }} as base
    inner join kinds
        on kinds.category_id = base.category_id
        and kinds.event_type = base.event_type
        and kinds.family = 'exponential'
    cross join target_days
    where base.as_of = {{ base_ts }}
),
{% else %}
carried as (
    select
        null::timestamptz as as_of, null::text as user_id, null::text as category_id, null::text as event_type,
        null::float8 as interest, null::bigint as event_count, null::timestamptz as last_event_ts
    where false
),
{% endif %}

new_events as (
    {%- if plan.base_day %}
    select * from {{ ref('stg_behaviour__events') }} where load_id > {{ plan.base_watermark }}
    union all
    select * from {{ ref('stg_behaviour__events') }}
    where load_id <= {{ plan.base_watermark }} and event_ts >= {{ base_ts }}
    {%- else %}
    select * from {{ ref('stg_behaviour__events') }}
    {%- endif %}
),

uncounted_events as (
    select new_events.*, kinds.weight, kinds.family, kinds.half_life_days, kinds.logistic_k, kinds.logistic_l,
        kinds.period_days, kinds.period_weights
    from new_events
    inner join kinds
        on kinds.category_id = new_events.category_id
        and kinds.event_type = new_events.event_type
    {%- if plan.base_day %}
    where kinds.family = 'exponential'
    {%- if plan.recomputed_kinds %}
    union all
    select all_events.*, kinds.weight, kinds.family, kinds.half_life_days, kinds.logistic_k, kinds.logistic_l,
        kinds.period_days, kinds.period_weights
    from {{ ref('stg_behaviour__events') }} as all_events
    inner join kinds
        on kinds.category_id = all_events.category_id
        and kinds.event_type = all_events.event_type
    where kinds.family <> 'exponential'
    {%- endif %}
    {%- endif %}
),

aged as (
    select
        target_days.as_of,
        uncounted_events.*,
        extract(epoch from target_days.as_of - uncounted_events.event_ts)::float8 / 86400.0 as age_days
    from target_days
    inner join uncounted_events on uncounted_events.event_ts < target_days.as_of
),

fresh as (
    select
        as_of,
        user_id,
        category_id,
        event_type,
        weight * {{ decay_expression('family', 'age_days', 'half_life_days', 'logistic_k', 'logistic_l',
                                     'period_days', 'period_weights') }} as interest,
        1::bigint as event_count,
        event_ts as last_event_ts
    from aged
),

combined as (
    select * from carried
    union all
    select * from fresh
),

final as (
    select
        as_of,
        user_id,
        category_id,
        event_type,
        sum(interest) as interest,
        sum(event_count)::bigint as event_count,
        max(last_event_ts) as last_event_ts,
        (select coalesce(max(load_id), 0) from {{ ref('stg_behaviour__events') }}) as watermark_load_id,
        '{{ plan.fingerprint }}'::text as parameters_fingerprint
    from combined
    group by as_of, user_id, category_id, event_type
)

select * from final
