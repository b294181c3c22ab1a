{#- The churn model's inputs per (user, as_of), from the events before as_of: the same numbers as
    models.pipeline.churn.user_features at cutoff as_of (tests/integration/test_feature_store.py compares them).
    Read online through the feature service churn_v1, whose on-demand view moves them to the request time. #}
{{ config(indexes=[{'columns': ['as_of'], 'type': 'brin'}]) }}

{%- set half_lives = var('churn_half_lives_days') %}
{%- set types = event_types() %}  {#- the seed event_type_weights' event types (macro event_types) #}

with events as (
    select * from {{ ref('stg_behaviour__events') }}
),

as_of_days as (
    {{ as_of_days() }}
),

past as (
    select
        as_of_days.as_of,
        events.user_id,
        events.item_id,
        events.category_id,
        events.event_type,
        events.event_ts,
        events.value,
        {{ age_days('as_of_days.as_of', 'events.event_ts') }} as age_days
    from as_of_days
    inner join events on events.event_ts < as_of_days.as_of
),

history as (
    select
        as_of,
        user_id,
        min(age_days) as recency_days,
        min(age_days) filter (where event_type = 'purchase') as last_purchase_age_days,
        max(age_days) as tenure_days,
        count(*)::float8 as event_count,
        (count(*) filter (where event_type = 'purchase'))::float8 as purchase_count,
        (count(distinct event_ts) filter (where event_type = 'purchase'))::float8 as purchase_occasions,
        coalesce(sum(coalesce(value, 0)) filter (where event_type = 'purchase'), 0)::float8 as monetary,
        count(distinct item_id)::float8 as distinct_items,
        count(distinct category_id)::float8 as distinct_categories
        {%- for h in half_lives %}
        {%- for kind in types %},
        coalesce(sum(power(0.5::float8, age_days / {{ h }}::float8)) filter (where event_type = '{{ kind }}'), 0)
            as decayed_{{ kind }}_h{{ h }}
        {%- endfor %}
        {%- endfor %}
    from past
    group by as_of, user_id
),

{#- Gaps between distinct purchase instants (one invoice = one occasion). #}
occasions as (
    select distinct as_of, user_id, event_ts from past where event_type = 'purchase'
),

gaps as (
    select
        as_of,
        user_id,
        extract(epoch from event_ts - lag(event_ts) over (partition by as_of, user_id order by event_ts))::float8
            / 86400.0 as gap_days
    from occasions
),

gap_stats as (
    select as_of, user_id, avg(gap_days) as gap_mean, stddev_samp(gap_days) as gap_std
    from gaps
    where gap_days is not null
    group by as_of, user_id
),

final as (
    select
        history.as_of,
        history.user_id,
        history.recency_days,
        {#- no purchase yet: the whole tenure; under two occasions the mean gap is the tenure, under three
            (one gap) the deviation is 0, as in models.pipeline.churn.user_features #}
        coalesce(history.last_purchase_age_days, history.tenure_days) as purchase_recency_days,
        history.tenure_days,
        history.event_count,
        history.purchase_count,
        history.purchase_occasions,
        history.monetary,
        history.distinct_items,
        history.distinct_categories,
        coalesce(gap_stats.gap_mean, history.tenure_days) as purchase_gap_mean_days,
        coalesce(gap_stats.gap_std, 0) as purchase_gap_std_days
        {%- for h in half_lives %}
        {%- for kind in types %},
        history.decayed_{{ kind }}_h{{ h }}
        {%- endfor %}
        {%- endfor %}
    from history
    left join gap_stats
        on gap_stats.as_of = history.as_of
        and gap_stats.user_id = history.user_id
)

select * from final
