{#- decay_expression: the SQL twin of interest_decay.decay.multiplier (same formulas, see its docs),
    as an expression over the given columns, so models inline it (a function call per row costs ~4x).
    decay_multiplier wraps the same expression as a function, for ad-hoc queries and the tests.
    The table params.decay_parameters_fitted is where the model side writes fitted parameters. -#}
{% macro decay_expression(family, age_days, half_life_days, logistic_k, logistic_l, period_days, period_weights) -%}
    case {{ family }}
        when 'exponential' then
            case when {{ age_days }} / {{ half_life_days }} > 1000 then 0::float8
                 else power(0.5::float8, {{ age_days }} / {{ half_life_days }}) end
        when 'logistic' then
            case when {{ logistic_l }} * {{ age_days }} > 700 then 0::float8
                 else (1 + {{ logistic_k }}) / (1 + {{ logistic_k }} * exp({{ logistic_l }} * {{ age_days }})) end
        when 'period' then
            {{ period_weights }}[least(floor({{ age_days }} / {{ period_days }})::int + 1, cardinality({{ period_weights }}))]
    end
{%- endmacro %}

{#- repeat_expression: the SQL twin of interest_decay.decay.repeat, the repeat-purchase kernel
    (1 - bump_weight) 0.5^(age / half_life) + bump_weight exp(-((age - bump_mean) / bump_sd)^2 / 2), with the same
    caps (exponential 0 after 1000 half-lives, the bump 0 once its exponent passes 700, 1 within 1e-100 σ of μ:
    PostgreSQL raises on an underflow where Python rounds to 0). -#}
{% macro repeat_expression(age_days, half_life_days, bump_weight, bump_mean_days, bump_sd_days) -%}
    (1 - {{ bump_weight }}) * (case when {{ age_days }} / {{ half_life_days }} > 1000 then 0::float8
                                    else power(0.5::float8, {{ age_days }} / {{ half_life_days }}) end)
    + {{ bump_weight }} * (case when abs({{ age_days }} - {{ bump_mean_days }}) < 1e-100 * {{ bump_sd_days }} then 1::float8
                                when 0.5 * (({{ age_days }} - {{ bump_mean_days }}) / {{ bump_sd_days }})
                                      * (({{ age_days }} - {{ bump_mean_days }}) / {{ bump_sd_days }}) > 700 then 0::float8
                                else exp(-0.5 * (({{ age_days }} - {{ bump_mean_days }}) / {{ bump_sd_days }})
                                               * (({{ age_days }} - {{ bump_mean_days }}) / {{ bump_sd_days }})) end)
{%- endmacro %}

{% macro create_decay_functions() %}
create or replace function {{ target.schema }}.decay_multiplier(
    family text,
    age_days float8,
    half_life_days float8,
    logistic_k float8,
    logistic_l float8,
    period_days float8,
    period_weights float8[]
) returns float8
language sql immutable parallel safe as $$
    select {{ decay_expression('family', 'age_days', 'half_life_days', 'logistic_k', 'logistic_l', 'period_days', 'period_weights') }}
$$;
create or replace function {{ target.schema }}.repeat_multiplier(
    age_days float8,
    half_life_days float8,
    bump_weight float8,
    bump_mean_days float8,
    bump_sd_days float8
) returns float8
language sql immutable parallel safe as $$
    select {{ repeat_expression('age_days', 'half_life_days', 'bump_weight', 'bump_mean_days', 'bump_sd_days') }}
$$;
create extension if not exists pgcrypto;
create schema if not exists params;
create table if not exists params.decay_parameters_fitted (
    category_id text not null,
    event_type text not null,
    family text not null,
    half_life_days float8,
    logistic_k float8,
    logistic_l float8,
    period_days float8,
    period_weights text,
    fitted_at timestamptz not null default now(),
    fitted_by text,
    primary key (category_id, event_type)
);
{#- The repeat-purchase family's fit (models/fitting/repeat_decay.py, written by the fit_decay step): per item the bump
    (mean and spread of its repurchase interval, shrunk item -> category -> global, origin says which won) and the
    family's fade h and bump weight π; item_id '*' is the shop's row, for items the fit has not seen. -#}
create table if not exists params.repeat_parameters_fitted (
    item_id text primary key,
    category_id text,
    half_life_days float8 not null check (half_life_days > 0),
    bump_weight float8 not null check (bump_weight = 0 or bump_weight between 1e-6 and 1),
    bump_mean_days float8 not null check (bump_mean_days >= 0),
    bump_sd_days float8 not null check (bump_sd_days > 0),
    gaps bigint not null,
    origin text not null,
    fit_cutoff date,
    fitted_at timestamptz not null default now(),
    fitted_by text
);
{#- What the pipeline's fit_decay step records beside the parameters (models/fitting/fit_decay.py): the 95% interval of
    the half-life, whether the fit says no decay, the events and users behind it, where the row's parameters
    come from (fitted, or pooled: 'category c', 'global'), and the cutoff of the events it saw. A table made
    before them gets them once (checked first: the alter locks the table, and every dbt run starts here). -#}
do $$
begin
    if not exists (select from information_schema.columns where table_schema = 'params'
                   and table_name = 'decay_parameters_fitted' and column_name = 'fit_cutoff') then
        alter table params.decay_parameters_fitted
            add column if not exists half_life_low float8,
            add column if not exists half_life_high float8,
            add column if not exists no_decay boolean,
            add column if not exists anchors bigint,
            add column if not exists users bigint,
            add column if not exists origin text,
            add column if not exists fit_cutoff date;
    end if;
end
$$
{% endmacro %}
