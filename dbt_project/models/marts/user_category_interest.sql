{{ config(materialized='incremental', unique_key='as_of', incremental_strategy='delete+insert') }}

with snapshots as (
    select * from {{ ref('interest_snapshots') }}
    where as_of between {{ as_of_start_ts() }}
        and {{ as_of_ts() }}
),

final as (
    select
        as_of,
        user_id,
        category_id,
        sum(interest) as interest,
        sum(event_count)::bigint as event_count,
        max(last_event_ts) as last_event_ts
    from snapshots
    group by as_of, user_id, category_id
)

select * from final
