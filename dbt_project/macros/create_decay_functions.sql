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
{#- What the pipeline's fit_decay step records beside the parameters (models/fit_decay.py): the 95% interval of
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
