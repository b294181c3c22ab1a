{#- Rebuilt in place: each run replaces its rows in one transaction (incremental, the pre-hook deletes them,
    the run appends the new ones) instead of swapping in a new table, which dbt does by dropping the old one
    with cascade: the views that read it (user_category_interest, int_event_interest_contributions) would go
    with it and be re-created on every run. The lock makes a second run at once wait, then replace the first
    run's rows (without it, its delete would miss them and both runs' rows would stay). A column those views
    read can then only be dropped or retyped with --full-refresh. -#}
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='sync_all_columns',
          pre_hook="{{ 'lock table ' ~ this ~ ' in exclusive mode; delete from ' ~ this if is_incremental() else '' }}",
          post_hook='analyze {{ this }}') }}

with event_kinds as (
    select * from {{ ref('int_event_kinds') }}
),

weights as (
    select * from {{ ref('event_type_weights') }}
),

parameters as (
    select * from {{ ref('int_decay_parameters') }}
),

final as (
    select distinct on (event_kinds.category_id, event_kinds.event_type)
        event_kinds.category_id,
        event_kinds.event_type,
        weights.weight,
        parameters.family,
        parameters.half_life_days,
        parameters.logistic_k,
        parameters.logistic_l,
        parameters.period_days,
        parameters.period_weights,
        {#- For int_interest_day_deltas, which sums over millions of events: ln(0.5) / half-life
            (0.5^(t/h) = e^(rate*t)) and the event type's place in event_types() (an integer to filter on
            rather than a text). #}
        case when parameters.half_life_days > 0 and parameters.half_life_days < 'infinity'::float8
            then ln(0.5::float8) / parameters.half_life_days end as ln_decay_per_day,
        {{ type_position(event_types(), 'event_kinds.event_type') }} as type_position
    from event_kinds
    inner join weights on weights.event_type = event_kinds.event_type
    inner join parameters
        on parameters.category_id in (event_kinds.category_id, '*')
        and parameters.event_type in (event_kinds.event_type, '*')
    order by
        event_kinds.category_id,
        event_kinds.event_type,
        parameters.category_id = '*',
        parameters.event_type = '*'
)

select * from final
