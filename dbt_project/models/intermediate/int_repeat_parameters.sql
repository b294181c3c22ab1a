{#- The repeat-purchase family's parameters per item: the fit's rows (params.repeat_parameters_fitted, written
    by the fit_decay step) and the shop's row item_id '*', which items the fit has not seen take. Before any fit
    the '*' row is no fade and no bump: the family counts purchase days. -#}
with fitted as (
    select * from {{ source('decay_params', 'repeat_parameters_fitted') }}
),

unfitted as (
    select
        '*'::text as item_id,
        null::text as category_id,
        'infinity'::float8 as half_life_days,
        0::float8 as bump_weight,
        30::float8 as bump_mean_days,
        10::float8 as bump_sd_days,
        0::bigint as gaps,
        'default'::text as origin
),

final as (
    select item_id, category_id, half_life_days, bump_weight, bump_mean_days, bump_sd_days, gaps, origin
    from fitted
    union all
    select * from unfitted
    where not exists (select from fitted where fitted.item_id = '*')
)

select * from final
