{{ config(indexes=[{'columns': ['as_of'], 'type': 'brin'}]) }}

with events as (
    select * from {{ ref('stg_behaviour__events') }}
),

as_of_days as (
    {{ as_of_days() }}
),

data_end as (
    select max(event_ts) as last_event_ts from events
),

history as (
    select
        as_of_days.as_of,
        events.user_id,
        count(*) as event_count,
        count(*) filter (where events.event_ts >= as_of_days.as_of - interval '{{ var("activity_window_days") }} days')
            as recent_event_count,
        count(*) filter (where events.event_type = 'purchase') as purchase_count,
        coalesce(sum(events.value) filter (
            where events.event_type = 'purchase'
            and events.event_ts >= as_of_days.as_of - interval '{{ var("activity_window_days") }} days'), 0)
            as recent_purchase_value,
        min(events.event_ts) as first_event_ts,
        max(events.event_ts) as last_event_ts,
        max(events.event_ts) filter (where events.event_type = 'purchase') as last_purchase_ts
    from as_of_days
    inner join events on events.event_ts < as_of_days.as_of
    group by as_of_days.as_of, events.user_id
),

future_purchases as (
    select as_of_days.as_of, events.user_id, count(*) as purchase_count
    from as_of_days
    inner join events
        on events.event_type = 'purchase'
        and events.event_ts >= as_of_days.as_of
        and events.event_ts < as_of_days.as_of + interval '{{ var("churn_horizon_days") }} days'
    group by as_of_days.as_of, events.user_id
),

final as (
    select
        history.as_of,
        history.user_id,
        {{ age_days('history.as_of', 'history.last_event_ts') }} as recency_days,
        history.recent_event_count as frequency,
        history.recent_purchase_value as monetary,
        history.event_count,
        history.purchase_count,
        history.first_event_ts,
        history.last_event_ts,
        history.last_purchase_ts,
        case
            when history.as_of + interval '{{ var("churn_horizon_days") }} days' > data_end.last_event_ts then null
            else coalesce(future_purchases.purchase_count, 0) = 0
        end as churned
    from history
    cross join data_end
    left join future_purchases
        on future_purchases.as_of = history.as_of
        and future_purchases.user_id = history.user_id
)

select * from final
