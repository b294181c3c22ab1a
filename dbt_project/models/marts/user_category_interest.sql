{{ config(materialized='incremental', unique_key='as_of', incremental_strategy='delete+insert') }}

{%- set half_life_seconds = (var('half_life_days') | float) * 86400.0 %}

with events as (
    select * from {{ ref('stg_behaviour__events') }}
),

weights as (
    select * from {{ ref('event_type_weights') }}
),

as_of_days as (
    select (day::date::timestamp at time zone 'UTC') as as_of
    from generate_series({{ as_of_start_date() }}, {{ as_of_date() }}, interval '1 day') as day
),

contributions as (
    select
        as_of_days.as_of,
        events.user_id,
        events.category_id,
        events.event_ts,
        weights.weight
        * power(0.5::float8, extract(epoch from as_of_days.as_of - events.event_ts)::float8 / {{ half_life_seconds }})
            as interest
    from as_of_days
    inner join events on events.event_ts < as_of_days.as_of
    inner join weights on weights.event_type = events.event_type
),

final as (
    select
        as_of,
        user_id,
        category_id,
        sum(interest) as interest,
        count(*) as event_count,
        max(event_ts) as last_event_ts
    from contributions
    group by as_of, user_id, category_id
)

select * from final
