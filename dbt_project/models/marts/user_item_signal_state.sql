{{ config(indexes=[{'columns': ['as_of'], 'type': 'brin'}]) }}

{#- The item ranker's user-side state (models/pipeline/item_signals.py: pair_table, user_table, category_table) at
    the run's as_of, one row per user, each per-item and per-category column an array in the order of item_ids /
    user_category_ids. Instants are epoch seconds (NaN: none); decayed sums hold at as_of. A day counts from its first
    event (UTC days). The service moves the row to the request time exactly (signals_at); /events folds live
    events into it (interest_decay.online.item_state). A test compares it with the Python tables to 1e-9. -#}

with as_of as (
    select {{ as_of_ts() }} as as_of
),

events as (
    select user_id, item_id, category_id, event_type, event_ts, date_trunc('day', event_ts, 'UTC') as day
    from {{ ref('stg_behaviour__events') }}
    where event_ts < (select as_of from as_of)
),

{#- Purchases are the target where the data has any, else every event type (models.harness.ranking.target_types). -#}
targets_are_purchases as (
    select exists(select 1 from events where event_type = 'purchase') as purchases
),

pair_days as (
    select user_id, item_id, day, min(event_ts) as first_ts, count(*) as events
    from events
    group by user_id, item_id, day
),

target_days as (
    select user_id, item_id, day, min(event_ts) as first_ts
    from events
    where event_type = 'purchase' or not (select purchases from targets_are_purchases)
    group by user_id, item_id, day
),

pairs as (
    select
        pair_days.user_id,
        pair_days.item_id,
        count(*)::float8 as item_days,
        sum(pair_days.events)::float8 as item_events,
        max(pair_days.first_ts) as last_ts,
        min(pair_days.first_ts) as first_ts,
        sum(power(0.5, {{ age_days('as_of.as_of', 'pair_days.first_ts') }} / 30.0)) as sum_item_days_30,
        sum(power(0.5, {{ age_days('as_of.as_of', 'pair_days.first_ts') }} / 90.0)) as sum_item_days_90
    from pair_days cross join as_of
    group by pair_days.user_id, pair_days.item_id
),

pair_targets as (
    select user_id, item_id, count(*)::float8 as target_days, max(first_ts) as target_last_ts
    from target_days
    group by user_id, item_id
),

category_days as (
    select user_id, category_id, day, min(event_ts) as first_ts
    from events
    group by user_id, category_id, day
),

categories as (
    select
        category_days.user_id,
        category_days.category_id,
        count(*)::float8 as category_days,
        max(category_days.first_ts) as category_last_ts,
        sum(power(0.5, {{ age_days('as_of.as_of', 'category_days.first_ts') }} / 30.0)) as sum_category_days_30
    from category_days cross join as_of
    group by category_days.user_id, category_days.category_id
),

users as (
    select
        user_id,
        count(distinct day)::float8 as user_days,
        max(first_ts) filter (where day_rank = 1) as user_last_ts,
        count(distinct item_id)::float8 as user_items
    from (
        select user_id, item_id, day, min(event_ts) over (partition by user_id, day) as first_ts,
            dense_rank() over (partition by user_id order by day desc) as day_rank
        from events
    ) as ranked
    group by user_id
),

user_pairs as (
    select
        pairs.user_id,
        array_agg(pairs.item_id order by pairs.item_id) as item_ids,
        array_agg(pairs.item_days order by pairs.item_id) as item_days,
        array_agg(pairs.item_events order by pairs.item_id) as item_events,
        array_agg(coalesce(pair_targets.target_days, 0) order by pairs.item_id) as target_days,
        array_agg(date_part('epoch', pairs.last_ts) order by pairs.item_id) as last_ts,
        array_agg(date_part('epoch', pairs.first_ts) order by pairs.item_id) as first_ts,
        array_agg(coalesce(date_part('epoch', pair_targets.target_last_ts), 'NaN') order by pairs.item_id)
            as target_last_ts,
        array_agg(pairs.sum_item_days_30 order by pairs.item_id) as sum_item_days_30,
        array_agg(pairs.sum_item_days_90 order by pairs.item_id) as sum_item_days_90
    from pairs
    left join pair_targets on pairs.user_id = pair_targets.user_id and pairs.item_id = pair_targets.item_id
    group by pairs.user_id
),

user_categories as (
    select
        user_id,
        array_agg(category_id order by category_id) as user_category_ids,
        array_agg(category_days order by category_id) as category_days,
        array_agg(date_part('epoch', category_last_ts) order by category_id) as category_last_ts,
        array_agg(sum_category_days_30 order by category_id) as sum_category_days_30
    from categories
    group by user_id
),

final as (
    select
        as_of.as_of,
        users.user_id,
        users.user_days,
        date_part('epoch', users.user_last_ts) as user_last_ts,
        users.user_items,
        user_pairs.item_ids,
        user_pairs.item_days,
        user_pairs.item_events,
        user_pairs.target_days,
        user_pairs.last_ts,
        user_pairs.first_ts,
        user_pairs.target_last_ts,
        user_pairs.sum_item_days_30,
        user_pairs.sum_item_days_90,
        user_categories.user_category_ids,
        user_categories.category_days,
        user_categories.category_last_ts,
        user_categories.sum_category_days_30
    from users
    cross join as_of
    inner join user_pairs on users.user_id = user_pairs.user_id
    inner join user_categories on users.user_id = user_categories.user_id
)

select * from final
