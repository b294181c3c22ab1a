-- depends_on: {{ ref('stg_behaviour__events') }}
{{ config(indexes=[{'columns': ['as_of'], 'type': 'brin'}], on_schema_change='append_new_columns') }}

{#- One feature row per (user, as_of) for Feast, for the days incremental_days gives (the run's window,
    from the latest stored day on; the whole window when the decay parameters' fingerprint changed).
    Besides the top categories, the row carries the interest per (category, event type) "kind" with the
    kind's exponential half-life: that is what lets the online store decay a stored score exactly to the
    request time (feature_repo: user_interest_now). #}
{%- set days = incremental_days(this, fingerprint=parameters_fingerprint()) %}

with target_days as (
    select (day::date::timestamp at time zone 'UTC') as as_of
    from generate_series(date '{{ days.first_day }}', date '{{ days.last_day }}', interval '1 day') as day
),

interest as (
    {{ interest_read('select as_of from target_days') }}
),

kinds as (
    select * from {{ ref('int_event_kind_parameters') }}
),

ranked as (
    select
        *,
        row_number() over (partition by user_id, as_of order by interest desc, category_id asc) as category_rank
    from interest
),

categories as (
    select
        user_id,
        as_of,
        array_agg(category_id order by category_rank)
            filter (where category_rank <= {{ var('max_categories_per_user') }}) as category_ids,
        array_agg(interest order by category_rank)
            filter (where category_rank <= {{ var('max_categories_per_user') }}) as interest_scores,
        sum(interest) as total_interest,
        sum(event_count)::bigint as event_count,
        count(*)::bigint as category_count,
        max(last_event_ts) as last_event_ts
    from ranked
    group by user_id, as_of
),

{#- Kinds (category, event type) of the kept top categories, from the row's column per event type. A kind
    of another family than exponential gets half-life NaN: its score is held until the next
    materialization (no exact read-time form exists for it). #}
kind_rows as (
    select
        ranked.user_id,
        ranked.as_of,
        ranked.category_id,
        per_type.event_type,
        per_type.interest,
        case when kinds.family = 'exponential' then kinds.half_life_days else 'NaN'::float8 end as half_life_days,
        ranked.category_rank
    from ranked
    cross join lateral (
        values {% for t in event_types() %}('{{ t }}', ranked."interest_{{ t }}"){{ ', ' if not loop.last }}{% endfor %} -- noqa: LT05
    ) as per_type (event_type, interest)
    inner join kinds
        on kinds.category_id = ranked.category_id
        and kinds.event_type = per_type.event_type
    where ranked.category_rank <= {{ var('max_categories_per_user') }}
        and per_type.interest > 0
),

kind_arrays as (
    select
        user_id,
        as_of,
        array_agg(category_id order by category_rank, event_type) as kind_category_ids,
        array_agg(event_type order by category_rank, event_type) as kind_event_types,
        array_agg(interest order by category_rank, event_type) as kind_scores,
        array_agg(half_life_days order by category_rank, event_type) as kind_half_lives
    from kind_rows
    group by user_id, as_of
),

final as (
    select
        categories.*,
        categories.as_of as scores_as_of,
        coalesce(kind_arrays.kind_category_ids, array[]::text[]) as kind_category_ids,
        coalesce(kind_arrays.kind_event_types, array[]::text[]) as kind_event_types,
        coalesce(kind_arrays.kind_scores, array[]::float8[]) as kind_scores,
        coalesce(kind_arrays.kind_half_lives, array[]::float8[]) as kind_half_lives,
        {{ parameters_fingerprint() }} as parameters_fingerprint
    from categories
    left join kind_arrays
        on kind_arrays.user_id = categories.user_id
        and kind_arrays.as_of = categories.as_of
)

select * from final
