with events as (
    select * from {{ ref('stg_behaviour__events') }}
),

weights as (
    select * from {{ ref('event_type_weights') }}
),

parameters as (
    select * from {{ ref('int_decay_parameters') }}
),

event_kinds as (
    select distinct category_id, event_type from events
),

resolved as (
    select distinct on (event_kinds.category_id, event_kinds.event_type)
        event_kinds.category_id,
        event_kinds.event_type,
        parameters.family,
        parameters.half_life_days,
        parameters.logistic_k,
        parameters.logistic_l,
        parameters.period_days,
        parameters.period_weights,
        weights.weight
    from event_kinds
    inner join weights on weights.event_type = event_kinds.event_type
    inner join parameters
        on parameters.category_id in (event_kinds.category_id, '*')
        and parameters.event_type in (event_kinds.event_type, '*')
    order by
        event_kinds.category_id,
        event_kinds.event_type,
        parameters.category_id = '*',
        parameters.event_type = '*'
),

as_of_days as (
    select (day::date::timestamp at time zone 'UTC') as as_of
    from generate_series({{ as_of_start_date() }}, {{ as_of_date() }}, interval '1 day') as day
),

final as (
    select
        as_of_days.as_of,
        events.user_id,
        events.item_id,
        events.category_id,
        events.event_type,
        events.event_ts,
        resolved.weight * {{ target.schema }}.decay_multiplier(
            resolved.family,
            extract(epoch from as_of_days.as_of - events.event_ts)::float8 / 86400.0,
            resolved.half_life_days,
            resolved.logistic_k,
            resolved.logistic_l,
            resolved.period_days,
            resolved.period_weights
        ) as interest
    from as_of_days
    inner join events on events.event_ts < as_of_days.as_of
    inner join resolved
        on resolved.category_id = events.category_id
        and resolved.event_type = events.event_type
)

select * from final
