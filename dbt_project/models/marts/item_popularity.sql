{{ config(indexes=[{'columns': ['as_of'], 'type': 'brin'}]) }}

with contributions as (
    select * from {{ ref('int_event_interest_contributions') }}
),

final as (
    select
        as_of,
        item_id,
        min(category_id) as category_id,
        sum(interest) as popularity,
        count(*) filter (where event_ts >= as_of - interval '{{ var("activity_window_days") }} days')
            as recent_event_count,
        count(distinct user_id) as user_count,
        max(event_ts) as last_event_ts
    from contributions
    group by as_of, item_id
)

select * from final
