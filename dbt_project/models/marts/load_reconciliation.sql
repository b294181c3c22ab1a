{{ config(materialized='table') }}

with loads as (
    select * from {{ source('behaviour', 'loads') }}
),

checked as (
    select * from {{ ref('stg_behaviour__events_checked') }}
),

staged as (
    select * from {{ ref('stg_behaviour__events') }}
),

checked_counts as (
    select
        load_id,
        count(*) as raw_rows,
        count(*) filter (where reject_reason is not null) as rejected_rows,
        count(*) filter (where reject_reason is null) as valid_rows
    from checked
    group by load_id
),

staged_counts as (
    select load_id, count(*) as staged_rows
    from staged
    group by load_id
),

final as (
    select
        loads.load_id,
        loads.source,
        loads.loaded_at,
        loads.row_count as file_rows,
        coalesce(checked_counts.raw_rows, 0) as raw_rows,
        coalesce(staged_counts.staged_rows, 0) as staged_rows,
        coalesce(checked_counts.valid_rows, 0) - coalesce(staged_counts.staged_rows, 0) as duplicate_rows,
        coalesce(checked_counts.rejected_rows, 0) as rejected_rows
    from loads
    left join checked_counts on checked_counts.load_id = loads.load_id
    left join staged_counts on staged_counts.load_id = loads.load_id
    {#- a load stored after staging read the raw loads is reconciled by the next run #}
    where loads.load_id <= (select coalesce(max(load_id), 0) from checked)
)

select * from final
