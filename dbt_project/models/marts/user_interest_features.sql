with interest as (
    select * from {{ ref('user_category_interest') }}
),

ranked as (
    select
        *,
        row_number() over (partition by user_id, as_of order by interest desc, category_id) as category_rank
    from interest
),

final as (
    select
        user_id,
        as_of,
        array_agg(category_id order by category_rank)
            filter (where category_rank <= {{ var('max_categories_per_user') }}) as category_ids,
        array_agg(interest order by category_rank)
            filter (where category_rank <= {{ var('max_categories_per_user') }}) as interest_scores,
        sum(interest) as total_interest,
        sum(event_count)::bigint as event_count,
        count(*)::bigint as category_count,
        max(last_event_ts) as last_event_ts
    from ranked
    group by user_id, as_of
)

select * from final
