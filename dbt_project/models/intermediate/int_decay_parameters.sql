{{ config(materialized='table') }}

with defaults as (
    select * from {{ ref('decay_parameter_defaults') }}
),

fitted as (
    select * from {{ source('decay_params', 'decay_parameters_fitted') }}
),

combined as (
    select category_id, event_type, family, half_life_days, logistic_k, logistic_l, period_days, period_weights,
        1 as priority, 'fitted' as origin
    from fitted
    union all
    select category_id, event_type, family, half_life_days, logistic_k, logistic_l, period_days, period_weights,
        2 as priority, 'default' as origin
    from defaults
),

ranked as (
    select
        *,
        row_number() over (partition by category_id, event_type order by priority) as preference
    from combined
),

final as (
    select
        category_id,
        event_type,
        family,
        coalesce(half_life_days, {{ var('half_life_days') }}) as half_life_days,
        logistic_k,
        logistic_l,
        period_days,
        string_to_array(period_weights, ';')::float8[] as period_weights,
        origin
    from ranked
    where preference = 1
)

select * from final
