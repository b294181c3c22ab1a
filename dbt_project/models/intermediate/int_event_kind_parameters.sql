{{ config(materialized='table', post_hook='analyze {{ this }}') }}

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

final as (
    select distinct on (event_kinds.category_id, event_kinds.event_type)
        event_kinds.category_id,
        event_kinds.event_type,
        weights.weight,
        parameters.family,
        parameters.half_life_days,
        parameters.logistic_k,
        parameters.logistic_l,
        parameters.period_days,
        parameters.period_weights
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
)

select * from final
