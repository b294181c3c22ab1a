{#- A table, not a view: the staged events, the rejects and the reconciliation all read it, and the
    timestamp and number checks are the costly part of staging. Incremental: a row's checks depend on
    that row (and its load's time) alone, so a run checks only the loads after the latest checked one
    (raw loads are never changed once written); `dbt run --full-refresh` checks every load again. #}
{#- The pre-hook waits for the loads being written and holds new ones back until this run commits, so it
    never reads a load while one with a lower load_id is in flight (interest_decay.events.ingest.LOAD_ORDER_LOCK). #}
{{ config(materialized='incremental', incremental_strategy='append', direct_insert=true,
          indexes=[{'columns': ['load_id', 'row_number']}],
          pre_hook="select pg_advisory_xact_lock(hashtext('interest_decay.raw_loads'))") }}

with source as (
    select * from {{ source('behaviour', 'events') }}
),

loads as (
    select * from {{ source('behaviour', 'loads') }}
),

{#- Materialized: `final` names event_ts and value four times each; PostgreSQL would otherwise put the
    casts in every place that names them and run them up to four times per row. #}
typed as materialized (
    select
        source.load_id,
        source.row_number,
        {{ event_text('source.user_id') }} as user_id,
        {{ event_text('source.item_id') }} as item_id,
        {{ event_text('source.category_id') }} as category_id,
        {{ event_lower(event_text('source.event_type')) }} as event_type,
        {{ event_text('source.ts') }} as ts_text,
        {{ target.schema }}.try_timestamptz({{ event_text('source.ts') }}) as event_ts,
        {{ event_text('source.value') }} as value_text,
        {{ target.schema }}.try_float8({{ event_text('source.value') }}) as value,
        source.parse_error,
        loads.loaded_at
    from source
    inner join loads on loads.load_id = source.load_id
    {%- if is_incremental() %}
    where source.load_id > (select coalesce(max(load_id), 0) from {{ this }})
    {%- endif %}
),

final as (
    select
        *,
        {#- the rules of interest_decay/events/rules.py (macros/event_rules.sql is generated from it) #}
        {{ event_reject_reason() }} as reject_reason
    from typed
)

select * from final
