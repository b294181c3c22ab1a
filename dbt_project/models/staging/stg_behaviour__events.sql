{{ config(materialized='table', indexes=[{'columns': ['event_ts']}, {'columns': ['user_id']}, {'columns': ['load_id']}], post_hook='analyze {{ this }}') }}

with checked as (
    select * from {{ ref('stg_behaviour__events_checked') }}
    where reject_reason is null
),

numbered as (
    select
        *,
        row_number() over (
            partition by user_id, item_id, category_id, event_type, event_ts, value
            order by load_id, row_number
        ) as copy_number
    from checked
),

final as (
    select
        load_id,
        row_number,
        {{ pseudonymise('user_id') }} as user_id,
        item_id,
        category_id,
        event_type,
        event_ts,
        value
    from numbered
    where copy_number = 1
)

{#- Stored in load order, each load by user: an incremental run reads the loads after its watermark from
    a few contiguous pages (scattered, 1% new events touched a page per event), and a full aggregate still
    finds each user's events of a load together. #}
select * from final
order by load_id, user_id
