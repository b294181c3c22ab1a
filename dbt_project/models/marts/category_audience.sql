{{ config(materialized='table') }}

with interest as (
    select * from {{ ref('user_category_interest') }}
    where as_of = {{ as_of_ts() }}
),

final as (
    select
        category_id,
        user_id,
        as_of,
        interest,
        last_event_ts,
        row_number() over (partition by category_id order by interest desc, user_id asc) as audience_rank
    from interest
    where interest >= {{ var('audience_min_interest') }}
)

select * from final
