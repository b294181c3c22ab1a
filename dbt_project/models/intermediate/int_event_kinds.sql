{#- The kinds of event (category_id, event_type) among the staged events, kept up to date from the new loads
    only: an incremental run adds the kinds of the loads after staged_through_load_id to the stored ones
    (staged events are never removed, so a kind once seen stays) instead of listing the kinds of every staged
    event again (~1 s at 10M events). Every row carries the latest watermark: delete+insert replaces them all.
    The lock makes a second run at once wait and then read the first run's rows (without it, both would
    delete the same old rows and each insert its own copy). `dbt run --full-refresh` lists them from scratch. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert',
          unique_key=['category_id', 'event_type'],
          pre_hook="{{ 'lock table ' ~ this ~ ' in exclusive mode' if is_incremental() else '' }}") }}
{#- The watermark as a literal: compared with a subquery's value the planner guesses a third of the table
    and scans all of it. #}
{%- set watermark = run_query('select coalesce(max(staged_through_load_id), 0) from ' ~ this).rows[0][0]
                    if is_incremental() and execute else 0 %}

with new_events as (
    select * from {{ ref('stg_behaviour__events') }}
    where load_id > {{ watermark }}
),

latest_load as (
    select coalesce(max(load_id), 0) as load_id from {{ ref('stg_behaviour__events') }}
),

kinds as (
    {%- if is_incremental() %}
    select category_id, event_type from {{ this }}
    union
    {%- endif %}
    select distinct category_id, event_type from new_events
),

final as (
    select
        kinds.category_id,
        kinds.event_type,
        latest_load.load_id as staged_through_load_id
    from kinds
    cross join latest_load
)

select * from final
