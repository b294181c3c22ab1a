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
        nullif(trim(source.user_id), '') as user_id,
        nullif(trim(source.item_id), '') as item_id,
        nullif(trim(source.category_id), '') as category_id,
        lower(nullif(trim(source.event_type), '')) as event_type,
        nullif(trim(source.ts), '') as ts_text,
        {{ target.schema }}.try_timestamptz(nullif(trim(source.ts), '')) as event_ts,
        nullif(trim(source.value), '') as value_text,
        {{ target.schema }}.try_float8(nullif(trim(source.value), '')) as value,
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
        case
            when parse_error is not null then 'unparseable row: ' || parse_error
            when user_id is null then 'missing user_id'
            when item_id is null then 'missing item_id'
            when category_id is null then 'missing category_id'
            when greatest(length(user_id), length(item_id), length(category_id)) > 256
                then 'oversize id (more than 256 characters)'
            when event_type is null then 'missing event_type'
            {#- the event types are the seed's (interest_decay.events.schema.EVENT_TYPES is checked against it) #}
            when event_type not in (select weights.event_type from {{ ref('event_type_weights') }} as weights)
                then 'unknown event_type "' || left(event_type, 40) || '"'
            when ts_text is null then 'missing ts'
            when event_ts is null then 'unparseable timestamp "' || left(ts_text, 40) || '"'
            when event_ts < timestamptz '2000-01-01 00:00:00+00' then 'timestamp before 2000'
            when event_ts > loaded_at + interval '1 day' then 'timestamp in the future (after load time + 1 day)'
            when value_text is not null and value is null then 'non-numeric value "' || left(value_text, 40) || '"'
            when value = 'NaN'::float8 or value in ('Infinity'::float8, '-Infinity'::float8) then 'non-finite value'
            when value < 0 then 'negative value'
        end as reject_reason
    from typed
)

select * from final
