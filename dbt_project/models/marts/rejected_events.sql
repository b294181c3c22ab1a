{{ config(materialized='table') }}

with checked as (
    select * from {{ ref('stg_behaviour__events_checked') }}
),

final as (
    select
        load_id,
        row_number,
        user_id,
        item_id,
        category_id,
        event_type,
        ts_text,
        value_text,
        reject_reason
    from checked
    where reject_reason is not null
)

select * from final
