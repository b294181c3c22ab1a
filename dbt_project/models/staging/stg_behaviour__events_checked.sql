{#- A table, not a view: the staged events, the rejects and the reconciliation all read it, and the
    timestamp and number checks are the costly part of staging. Incremental: a row's checks depend on
    that row (and its load's time) alone, so a run checks only the loads after the latest checked one
    (raw loads are never changed once written); `dbt run --full-refresh` checks every load again. #}
{#- The pre-hook waits for the loads being written and holds new ones back until this run commits, so it
    never reads a load while one with a lower load_id is in flight (interest_decay.events.ingest.LOAD_ORDER_LOCK). #}
{{ config(materialized='incremental', incremental_strategy='append', direct_insert=true,
          indexes=[{'columns': ['load_id', 'row_number']}],
          pre_hook="select pg_advisory_xact_lock(hashtext('interest_decay.raw_loads'))") }}
{#- user_id is the keyed pseudonym from here on: raw user ids stay in schema raw. A run with another key than the
    one the checked rows were made with stops with advice (their pseudonyms and every mart's would not match). #}
{%- if is_incremental() and execute %}
    {%- set same_key = run_query(
        "select c.user_id = " ~ pseudonymise(event_text('r.user_id')) ~ " from (select load_id, row_number, user_id from "
        ~ this ~ " where user_id is not null limit 1) as c join " ~ source('behaviour', 'events')
        ~ " as r on r.load_id = c.load_id and r.row_number = c.row_number").rows %}
    {%- if same_key and not same_key[0][0] %}
        {{ exceptions.raise_compiler_error(
            "the staged events were pseudonymised with another PSEUDONYM_KEY: run `dbt run --full-refresh` "
            ~ "(every mart that keeps user ids must be rebuilt with the new key)") }}
    {%- endif %}
{%- endif %}

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

checked as (
    select
        *,
        {#- the rules of interest_decay/events/rules.py (macros/event_rules.sql is generated from it) #}
        {{ event_reject_reason() }} as reject_reason
    from typed
),

final as (
    select
        load_id,
        row_number,
        {{ pseudonymise('user_id') }} as user_id,
        item_id,
        category_id,
        event_type,
        ts_text,
        event_ts,
        value_text,
        value,
        parse_error,
        loaded_at,
        reject_reason
    from checked
)

select * from final
