{{ config(materialized='table') }}

with events as (
    select * from {{ ref('stg_behaviour__events') }}
    where event_ts < {{ as_of_ts() }}
),

numbered as (
    select
        *,
        row_number() over (partition by user_id order by event_ts desc, item_id desc, event_type desc) as recency_rank
    from events
),

kept as (
    select
        *,
        extract(epoch from event_ts - lag(event_ts) over (partition by user_id order by event_ts, item_id, event_type))
            as gap_seconds
    from numbered
    where recency_rank <= {{ var('max_sequence_length') }}
),

final as (
    select
        user_id,
        {{ as_of_ts() }} as as_of,
        count(*) as sequence_length,
        array_agg(item_id order by event_ts, item_id, event_type) as item_ids,
        array_agg(category_id order by event_ts, item_id, event_type) as category_ids,
        array_agg(event_type order by event_ts, item_id, event_type) as event_types,
        array_agg(extract(epoch from event_ts)::bigint order by event_ts, item_id, event_type) as event_epochs,
        array_agg(coalesce(gap_seconds, 0)::float8 order by event_ts, item_id, event_type) as gap_seconds
    from kept
    group by user_id
)

select * from final
