-- depends_on: {{ ref('int_event_kind_parameters') }}
-- depends_on: {{ ref('int_decay_parameters') }}
-- depends_on: {{ ref('event_type_weights') }}
{{ config(materialized='incremental', incremental_strategy='append', direct_insert=true,
          indexes=[{'columns': ['as_of'], 'type': 'brin'}], on_schema_change='append_new_columns',
          pre_hook=["{{ interest_deltas_lock() }}", "{{ interest_deltas_clear_window() }}",
                    "{{ interest_deltas_reset() }}", "set local jit = off"],
          post_hook="{{ '' if is_incremental() else 'create index on ' ~ this ~ ' (as_of) where user_id is null' }}") }}

{#- What each day's run added (see interest_deltas_plan and the .yml); macro interest_read gives the
    interest at a day. An incremental run replaces the days of its window: the pre-hooks delete them, the
    run appends their rows. JIT is off: compiling cost more than it saved, ~60 ms of a daily run and ~0.1 s
    of a full refresh on the 10M-event benchmark. -#}
{%- set plan = interest_deltas_plan() %}
{%- set types = plan.types %}
{%- set first_ts = "(date '" ~ plan.first_day ~ "'::timestamp at time zone 'UTC')" %}
{%- set end_ts = "(date '" ~ plan.last_day ~ "'::timestamp at time zone 'UTC')" %}
{%- set base_ts = "(date '" ~ plan.base_day ~ "'::timestamp at time zone 'UTC')" if plan.base_day else none %}
{{ interest_deltas_handoff(plan) }}

with kinds as (
    select * from {{ ref('int_event_kind_parameters') }}
),

{#- One scan: PostgreSQL ORs the load_id and event_ts indexes' bitmaps, and keeps the table's column
    statistics (under a UNION ALL of two scans it guessed ~300 rows for the join with kinds instead of ~100k,
    and sorted them to group them). #}
uncounted_events as (
    select * from {{ ref('stg_behaviour__events') }}
    {%- if plan.base_day %}
    where load_id > {{ plan.base_watermark }} or event_ts >= {{ base_ts }}
    {%- endif %}
),

{#- Each uncounted event of an exponential kind counts on the first window day after it (a one-day
    window: that day), decayed to it. #}
exponential_events as (
    select
        {%- if plan.first_day == plan.last_day %}
        {{ first_ts }} as as_of,
        {%- else %}
        greatest({{ first_ts }}, date_trunc('day', uncounted_events.event_ts, 'UTC') + interval '1 day') as as_of,
        {%- endif %}
        uncounted_events.user_id,
        uncounted_events.category_id,
        uncounted_events.event_ts,
        kinds.type_position,
        kinds.weight,
        kinds.ln_decay_per_day
    from uncounted_events
    inner join kinds
        on kinds.category_id = uncounted_events.category_id
        and kinds.event_type = uncounted_events.event_type
        {%- if plan.recomputed_kinds %}
        and kinds.family = 'exponential'
        {%- endif %}
    where uncounted_events.event_ts < {{ end_ts }}
),

{#- One row per (day, user, category), a column per event type: the state exact composition needs is one
    sum per (category, event type) rate, and a row per (user, category) aggregates 2.7x fewer groups than a
    row per event type (bench-results/data_layer.json). #}
{%- set one_day = plan.first_day == plan.last_day %}
exponential_rows as (
    select
        {#- a one-day window (the daily run, a full refresh) groups by (user, category) alone #}
        {{ first_ts ~ ' as as_of' if one_day else 'as_of' }},
        user_id,
        category_id,
        false as recomputed,
        {{ snapshot_row_aggregates(types) }}
    from (
        select
            *,
            {#- weight * 0.5^(age / half-life). An exponent below -700 (~1000 half-lives) counts as -700
                (e^-700 ~ 1e-304): PostgreSQL raises an error where exp() would underflow to 0, and greatest()
                costs less than a CASE that computes the age twice. #}
            weight * exp(greatest({{ age_days('as_of', 'event_ts') }} * ln_decay_per_day, -700::float8)) as interest
        from exponential_events
    ) as decayed
    group by {{ '' if one_day else 'as_of, ' }}user_id, category_id
),

target_days as (
    select (day::date::timestamp at time zone 'UTC') as as_of
    from generate_series(date '{{ plan.first_day }}', date '{{ plan.last_day }}', interval '1 day') as day
),

{#- One row per window day without a key: it alone carries the day's run (watermark, parameters), so a
    day no event touched is known too (the joins on kinds leave it out of every sum). A partial index
    (post-hook) finds it. #}
day_markers as (
    select
        as_of,
        null::text as user_id,
        null::text as category_id,
        false as recomputed,
        {%- for t in types %}
        null::float8 as "interest_{{ t }}",
        {%- endfor %}
        0::bigint as event_count,
        null::timestamptz as last_event_ts,
        (select coalesce(max(load_id), 0) from {{ ref('stg_behaviour__events') }}) as watermark_load_id,
        '{{ plan.fingerprint }}'::text as parameters_fingerprint
    from target_days
),
{%- if plan.recomputed_kinds %}

{#- Logistic and period kinds: every window day from all their events. #}
recomputed_rows as (
    select
        as_of,
        user_id,
        category_id,
        true as recomputed,
        {{ snapshot_row_aggregates(types) }}
    from (
        select
            target_days.as_of,
            events.user_id,
            events.category_id,
            events.event_ts,
            kinds.type_position,
            kinds.weight * {{ decay_expression(
                'kinds.family', age_days('target_days.as_of', 'events.event_ts'),
                'kinds.half_life_days', 'kinds.logistic_k', 'kinds.logistic_l', 'kinds.period_days',
                'kinds.period_weights') }} as interest
        from target_days
        inner join {{ ref('stg_behaviour__events') }} as events on events.event_ts < target_days.as_of
        inner join kinds
            on kinds.category_id = events.category_id
            and kinds.event_type = events.event_type
            and kinds.family <> 'exponential'
    ) as decayed
    group by as_of, user_id, category_id
),
{%- endif %}

final as (
    select * from day_markers
    union all
    select *, null::bigint as watermark_load_id, null::text as parameters_fingerprint from exponential_rows
    {%- if plan.recomputed_kinds %}
    union all
    select *, null::bigint as watermark_load_id, null::text as parameters_fingerprint from recomputed_rows
    {%- endif %}
)

select * from final
