{{ config(indexes=[{'columns': ['as_of'], 'type': 'brin'}]) }}

with contributions as (
    select * from {{ ref('int_event_interest_contributions') }}
    where as_of = {{ as_of_ts() }}
),

final as (
    select
        as_of,
        user_id,
        item_id,
        min(category_id) as category_id,
        sum(interest) as interest,
        count(*) as event_count,
        max(event_ts) as last_event_ts
    from contributions
    group by as_of, user_id, item_id
)

select * from final
