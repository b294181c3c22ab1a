{#- Repeat-purchase interest of a user in an item as of each day of the run's window: the repeat kernel
    (macro repeat_expression, Python twin interest_decay.decay.repeat) summed over the user's purchase days of
    the item before as_of and no older than var repeat_window_days, with the item's parameters (else the shop's
    '*' row). models/fitting/repeat_decay.py computes the same for the offline harness. -#}
{{ config(indexes=[{'columns': ['as_of'], 'type': 'brin'}]) }}

with state as (
    select * from {{ ref('user_item_purchase_days') }}
),

parameters as (
    select * from {{ ref('int_repeat_parameters') }}
),

as_of_days as (
    {{ as_of_days() }}
),

aged as (
    select
        as_of_days.as_of,
        state.user_id,
        state.item_id,
        kept.event_ts,
        coalesce(item.category_id, shop.category_id) as category_id,
        coalesce(item.half_life_days, shop.half_life_days) as half_life_days,
        coalesce(item.bump_weight, shop.bump_weight) as bump_weight,
        coalesce(item.bump_mean_days, shop.bump_mean_days) as bump_mean_days,
        coalesce(item.bump_sd_days, shop.bump_sd_days) as bump_sd_days,
        {{ age_days('as_of_days.as_of', 'kept.event_ts') }} as age_days
    from as_of_days
    cross join state
    cross join lateral unnest(state.purchase_times) as kept (event_ts)
    left join parameters as item on item.item_id = state.item_id
    cross join (select * from parameters where item_id = '*') as shop
    where kept.event_ts < as_of_days.as_of
        and kept.event_ts >= as_of_days.as_of - interval '{{ var("repeat_window_days") }} days'
),

final as (
    select
        as_of,
        user_id,
        item_id,
        min(category_id) as category_id,
        sum({{ repeat_expression('age_days', 'half_life_days', 'bump_weight', 'bump_mean_days', 'bump_sd_days') }})
            as repeat_interest,
        count(*) as purchase_days,
        max(event_ts) as last_purchase_ts,
        min(bump_mean_days) as bump_mean_days
    from aged
    group by as_of, user_id, item_id
)

select * from final
