{#- The repeat family's bounded state: per user x item the latest var repeat_max_purchases purchase days (a
    day's time is its first purchase that day, UTC), whatever as_of. An incremental run reads only the purchases
    staged after the stored watermark and rewrites the pairs they touch (delete+insert on the pair): O(new
    events). Merging by day and keeping the latest N of old and new gives the rows a full refresh gives. -#}
{{ config(materialized='incremental', unique_key=['user_id', 'item_id'], incremental_strategy='delete+insert',
          indexes=[{'columns': ['user_id', 'item_id'], 'unique': true}]) }}

with new_purchases as (
    select user_id, item_id, event_ts, load_id
    from {{ ref('stg_behaviour__events') }}
    where event_type = 'purchase'
    {%- if is_incremental() %}
        and load_id > (select coalesce(max(watermark_load_id), 0) from {{ this }})
    {%- endif %}
),

purchases as (
    select user_id, item_id, event_ts from new_purchases
    {%- if is_incremental() %}
    union all
    select stored.user_id, stored.item_id, kept.event_ts
    from {{ this }} as stored
    cross join lateral unnest(stored.purchase_times) as kept(event_ts)
    where (stored.user_id, stored.item_id) in (select user_id, item_id from new_purchases)
    {%- endif %}
),

days as (
    select user_id, item_id, min(event_ts) as event_ts
    from purchases
    group by user_id, item_id, date_trunc('day', event_ts, 'UTC')
),

ranked as (
    select *, row_number() over (partition by user_id, item_id order by event_ts desc) as recency_rank
    from days
),

final as (
    select
        user_id,
        item_id,
        array_agg(event_ts order by event_ts) as purchase_times,
        max(event_ts) as last_purchase_ts,
        (select max(load_id) from new_purchases) as watermark_load_id
    from ranked
    where recency_rank <= {{ var('repeat_max_purchases') }}
    group by user_id, item_id
)

select * from final
