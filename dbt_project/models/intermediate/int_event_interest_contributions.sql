with events as (
    select * from {{ ref('stg_behaviour__events') }}
),

kinds as (
    select * from {{ ref('int_event_kind_parameters') }}
),

as_of_days as (
    {{ as_of_days() }}
),

aged as (
    select
        as_of_days.as_of,
        events.user_id,
        events.item_id,
        events.category_id,
        events.event_type,
        events.event_ts,
        kinds.weight,
        kinds.family,
        kinds.half_life_days,
        kinds.logistic_k,
        kinds.logistic_l,
        kinds.period_days,
        kinds.period_weights,
        {{ age_days('as_of_days.as_of', 'events.event_ts') }} as age_days
    from as_of_days
    inner join events on events.event_ts < as_of_days.as_of
    inner join kinds
        on kinds.category_id = events.category_id
        and kinds.event_type = events.event_type
),

final as (
    select
        as_of,
        user_id,
        item_id,
        category_id,
        event_type,
        event_ts,
        weight * {{ decay_expression('family', 'age_days', 'half_life_days', 'logistic_k', 'logistic_l',
                                     'period_days', 'period_weights') }} as interest
    from aged
)

select * from final
