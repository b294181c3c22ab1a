{#- The days an incremental, per-day model recomputes this run: the run's window (vars as_of_start .. as_of)
    moved to start at the latest stored day when that lies inside it (re-running the latest day brings in
    later loads), and stretched to end at the latest stored day when that lies beyond it (re-running an
    older day recomputes the days after it, which built on it). Returns {first_day, last_day, latest_day,
    window_first, window_last, stale} (window_*: the vars' window as given). `stored_where` picks the rows
    whose as_of days count as stored (an indexed subset is enough).
    `fingerprint` (an SQL expression; the model stores it in column parameters_fingerprint): when the latest
    stored day was computed with another one (the decay parameters changed since), the whole window is
    recomputed (and the stored days after it), as int_interest_day_deltas recomputes it under the new parameters. -#}
{% macro incremental_days(relation, stored_where='true', fingerprint=none) %}
    {%- set days = {'first_day': none, 'last_day': none, 'latest_day': none, 'window_first': none, 'window_last': none,
                    'stale': false} -%}
    {%- if not execute -%}
        {{ return(days) }}
    {%- endif -%}
    {%- set window = run_query("select (" ~ as_of_start_date() ~ ")::text, (" ~ as_of_date() ~ ")::text").rows[0] -%}
    {%- do days.update({'first_day': window[0], 'last_day': window[1], 'window_first': window[0], 'window_last': window[1]}) -%}
    {%- if is_incremental() -%}
        {%- set latest = run_query("select (max(as_of) at time zone 'UTC')::date::text from " ~ relation
                                ~ " where " ~ stored_where).rows[0][0] -%}
        {%- do days.update({'latest_day': latest}) -%}
        {%- if latest and fingerprint is not none -%}
            {%- set has_column = adapter.get_columns_in_relation(relation) | selectattr('name', 'equalto', 'parameters_fingerprint') | list -%}
            {%- set stale = not has_column or run_query(
                "select exists (select from " ~ relation ~ " where as_of = (date '" ~ latest
                ~ "'::timestamp at time zone 'UTC') and " ~ stored_where ~ " and parameters_fingerprint is distinct from "
                ~ fingerprint ~ ")").rows[0][0] -%}
            {%- do days.update({'stale': stale}) -%}
        {%- endif -%}
        {%- if days.stale -%}
            {%- do days.update({'last_day': [latest, days.last_day] | max}) -%}
        {%- elif latest and days.first_day < latest <= days.last_day -%}
            {%- do days.update({'first_day': latest}) -%}
        {%- elif latest and latest > days.last_day -%}
            {%- do days.update({'last_day': latest}) -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(days) }}
{% endmacro %}

{#- What int_interest_day_deltas computes this run.

    int_interest_day_deltas holds, per as_of day, only what that day's run added (see its .yml): for an
    exponential kind the events the run counted, decayed to the day; the interest at a day T is the sum of
    all rows up to T, each decayed from its day to T (S(T) = sum S_d * 0.5^((T - d) / h), exact), which
    macro interest_read computes. A run therefore reads only the events no earlier run counted and writes
    rows only for the (user, category, event type) keys they touch: O(new events), not O(state).
    Logistic and period kinds have no exact incremental form: their keys are recomputed from all their
    events for every day of the window (read at that day only).

    Days: incremental_days(this) over the days' marker rows. Base: the latest stored day before them; its events are the ones
    loaded up to its watermark (load_id) and dated before it, so the uncounted events are those loaded
    after it (late events included) or dated at or after it. Each uncounted exponential event goes to the
    first window day after it.
    Full mode (first run, --full-refresh, no stored day before the window): all events are uncounted.
    Reset (parameters changed since the latest stored day, fingerprint differs): the pre-hook
    interest_deltas_reset deletes every stored day, the window is computed in full mode. -#}
{% macro interest_deltas_plan() %}
    {%- set plan = {'first_day': none, 'last_day': none, 'base_day': none, 'base_watermark': none, 'fingerprint': none,
                    'recomputed_kinds': 0, 'reset': false, 'types': [], 'clear_days': none, 'state': none} -%}
    {%- if not execute -%}
        {{ return(plan) }}
    {%- endif -%}
    {%- set days = incremental_days(this, 'user_id is null') -%}
    {%- set types = event_types() -%}
    {%- set facts = run_query(
        "select " ~ parameters_fingerprint() ~ ", "
        ~ "(select count(*) from " ~ ref('int_event_kind_parameters') ~ " where family <> 'exponential'), "
        ~ "(select count(*) from " ~ ref('int_event_kind_parameters') ~ " as k where (to_jsonb(k) ->> 'type_position')::int"
        ~ " is distinct from " ~ type_position(types, 'event_type') ~ ")"
    ).rows[0] -%}
    {%- if facts[2] -%}
        {{ exceptions.raise_compiler_error("int_event_kind_parameters was built before event_type_weights changed "
            ~ "(its type positions do not match the event types " ~ types | join(', ') ~ "): run it first, "
            ~ "e.g. dbt run --select int_event_kind_parameters+") }}
    {%- endif -%}
    {%- do plan.update({'first_day': days.first_day, 'last_day': days.last_day, 'fingerprint': facts[0],
                        'recomputed_kinds': facts[1], 'types': types}) -%}
    {%- if days.latest_day -%}
        {#- A day's marker row (user_id null, found by the partial index) carries its watermark and
            fingerprint. -#}
        {%- set stored = run_query(
            "select parameters_fingerprint from " ~ this
            ~ " where as_of = (date '" ~ days.latest_day ~ "'::timestamp at time zone 'UTC') and user_id is null"
            ~ " limit 1").rows[0][0] -%}
        {%- if stored != plan.fingerprint -%}
            {%- do plan.update({'reset': true, 'first_day': days.window_first, 'last_day': days.window_last}) -%}
        {%- else -%}
            {%- set base = run_query(
                "select (as_of at time zone 'UTC')::date::text, watermark_load_id from " ~ this
                ~ " where user_id is null and as_of = (select max(as_of) from " ~ this
                ~ " where as_of < (date '" ~ plan.first_day ~ "'::timestamp at time zone 'UTC') and user_id is null)"
                ~ " limit 1").rows -%}
            {%- if base -%}
                {%- do plan.update({'base_day': base[0][0], 'base_watermark': base[0][1]}) -%}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
    {#- For the pre-hook interest_deltas_clear_window (interest_deltas_handoff writes them into the compiled SQL):
        the stored days to replace, and the state of the stored days this plan was made from. -#}
    {%- if is_incremental() -%}
        {%- if days.latest_day and days.latest_day >= plan.first_day -%}
            {%- do plan.update({'clear_days': [plan.first_day, plan.last_day]}) -%}
        {%- endif -%}
        {%- do plan.update({'state': run_query("select " ~ snapshot_state(this)).rows[0][0]}) -%}
    {%- endif -%}
    {{ return(plan) }}
{% endmacro %}

{#- The state of int_interest_day_deltas' stored days, as text (an SQL expression): every run rewrites the marker
    row of each day it computes, so any run committed in between changes it. -#}
{% macro snapshot_state(relation) -%}
    (select coalesce(md5(string_agg(xmin::text || '@' || as_of::text, ',' order by as_of)), '')
     from {{ relation }} where user_id is null)
{%- endmacro %}

{#- The parameters int_interest_day_deltas was computed with, as one md5 (an SQL expression). -#}
{% macro parameters_fingerprint() -%}
    md5((select md5(coalesce(string_agg(p::text, ',' order by p::text), '')) from {{ ref('int_decay_parameters') }} p)
        || (select md5(coalesce(string_agg(w::text, ',' order by w::text), '')) from {{ ref('event_type_weights') }} w))
{%- endmacro %}

{#- Pre-hook of int_interest_day_deltas: changed parameters invalidate every stored day (their rows were decayed
    with the old ones), so they go before the window is recomputed in full (the plan's reset). -#}
{% macro interest_deltas_reset() %}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where (select parameters_fingerprint from {{ this }} where user_id is null order by as_of desc limit 1)
            <> {{ parameters_fingerprint() }}
    {%- endif -%}
{% endmacro %}

{#- The plan's part the pre-hook interest_deltas_clear_window needs, as an SQL comment in the model's compiled
    SQL: the model compiles before its hooks run, and a hook sees the compiled SQL as model.compiled_code. -#}
{% macro interest_deltas_handoff(plan) -%}
    /* interest_deltas_plan {{ tojson({'clear_days': plan.clear_days, 'state': plan.state}) }} */
{%- endmacro %}

{#- Pre-hook of int_interest_day_deltas, after the run's lock (interest_deltas_lock): the stored rows of the days
    the plan recomputes go (none when no stored day is in its window); the run then appends the window's
    rows, so re-running a day replaces it. The days are the plan's, known before the run (dbt's delete+insert
    takes them from the new rows, which PostgreSQL cannot plan an index scan for), read from the compiled SQL
    (interest_deltas_handoff). The plan was made when the model compiled, before the lock: if another run
    committed since, its base and window may no longer hold, and the run stops with nothing written. -#}
{% macro interest_deltas_clear_window() %}
    {%- if is_incremental() -%}
        {%- set marker = '/* interest_deltas_plan ' -%}
        {%- if marker not in (model.compiled_code or '') -%}
            {{ exceptions.raise_compiler_error("int_interest_day_deltas: its compiled SQL carries no plan "
                ~ "(macro interest_deltas_handoff); nothing was written") }}
        {%- endif -%}
        {%- set planned = fromjson(model.compiled_code.split(marker)[1].split(' */')[0]) -%}
        {%- set state = run_query("select " ~ snapshot_state(this)).rows[0][0] -%}
        {%- if state != planned.state -%}
            {{ exceptions.raise_compiler_error("int_interest_day_deltas changed after this run planned its days (another "
                ~ "run committed meanwhile): nothing was written; run it again") }}
        {%- endif -%}
        {%- if planned.clear_days -%}
        delete from {{ this }}
        where as_of >= (date '{{ planned.clear_days[0] }}'::timestamp at time zone 'UTC')
            and as_of <= (date '{{ planned.clear_days[1] }}'::timestamp at time zone 'UTC')
        {%- endif -%}
    {%- endif -%}
{% endmacro %}

{#- First pre-hook of int_interest_day_deltas: one run at a time writes it (held until the run commits). -#}
{% macro interest_deltas_lock() -%}
    select pg_advisory_xact_lock(hashtext('interest_decay.int_interest_day_deltas'))
{%- endmacro %}

{#- The event types of the seed event_type_weights, sorted: int_interest_day_deltas keeps one interest column
    per type ("interest_<type>"). Read from the seed's table itself (not through ref: the readers would
    otherwise need it as a unit-test input), so `dbt seed` must have run. A type must be a lowercase SQL
    identifier (letters, digits, underscore). -#}
{% macro event_types() %}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set seed = adapter.get_relation(database=target.database, schema=target.schema, identifier='event_type_weights') -%}
    {%- if seed is none -%}
        {{ exceptions.raise_compiler_error("table " ~ target.schema ~ ".event_type_weights is missing: run `dbt seed` first") }}
    {%- endif -%}
    {%- set types = run_query("select event_type from " ~ seed ~ " order by event_type").columns[0].values() | list -%}
    {%- for t in types -%}
        {%- if not modules.re.fullmatch('[a-z][a-z0-9_]{0,50}', t) -%}
            {{ exceptions.raise_compiler_error("event_type_weights: event type " ~ t ~ " must be a lowercase identifier ([a-z][a-z0-9_]*)") }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(types) }}
{% endmacro %}

{#- The place (from 1) of the event type in `column` among `types` (an SQL expression): int_event_kind_parameters'
    type_position, which snapshot_row_aggregates filters on. -#}
{% macro type_position(types, column) -%}
    array_position(array[{% for t in types %}'{{ t }}'{{ ', ' if not loop.last }}{% endfor %}]::text[], {{ column }})
{%- endmacro %}

{#- The aggregate columns of an int_interest_day_deltas row over decayed events (columns type_position: the
    event type's place in `types` from 1, interest, event_ts): "interest_<type>" per event type of `types`,
    event_count, last_event_ts. -#}
{% macro snapshot_row_aggregates(types) -%}
    {%- for t in types %}
        sum(interest) filter (where type_position = {{ loop.index }}) as "interest_{{ t }}",
    {%- endfor %}
        count(*)::bigint as event_count,
        max(event_ts) as last_event_ts
{%- endmacro %}

{#- Interest per (as_of, user_id, category_id) at each day of `days` (a query with one column as_of), read
    from int_interest_day_deltas: a row of day d that is not `recomputed` (exponential kinds) counts at T >= d,
    each type's column decayed as interest * 0.5^((T - d) / h) with the half-life of (category, type); a
    recomputed row (logistic and period kinds) only at its own day. Columns: interest (all types),
    "interest_<type>" per event type, event_count and last_event_ts of the same rows. `where` filters the
    snapshot rows (alias s). -#}
{% macro interest_read(days, where='true') -%}
    {%- set types = event_types() %}
    select
        as_of,
        user_id,
        category_id,
        {% for t in types %}coalesce("interest_{{ t }}", 0::float8){{ ' + ' if not loop.last }}{% endfor %}
            {%- if not types %}0::float8{% endif %} as interest,
        {%- for t in types %}
        "interest_{{ t }}",
        {%- endfor %}
        event_count,
        last_event_ts
    from (
        select
            days.as_of,
            s.user_id,
            s.category_id,
            {%- for t in types %}
            sum(case
                when s.recomputed then s."interest_{{ t }}"
                {#- below 1e-300 counts as 0 (a float8 product that small would underflow, an error) #}
                when s."interest_{{ t }}" <= 0 or ln(s."interest_{{ t }}") - 0.6931471805599453::float8
                    * {{ age_days('days.as_of', 's.as_of') }} / kinds."half_life_{{ t }}" < -690
                    then 0::float8
                else s."interest_{{ t }}" * power(
                    0.5::float8, {{ age_days('days.as_of', 's.as_of') }} / kinds."half_life_{{ t }}")
            end) as "interest_{{ t }}",
            {%- endfor %}
            sum(s.event_count)::bigint as event_count,
            max(s.last_event_ts) as last_event_ts
        from ({{ days }}) as days
        inner join {{ ref('int_interest_day_deltas') }} as s on s.as_of <= days.as_of
        inner join (
            select
                {%- for t in types %}
                max(half_life_days) filter (where event_type = '{{ t }}') as "half_life_{{ t }}",
                {%- endfor %}
                category_id
            from {{ ref('int_event_kind_parameters') }}
            group by category_id
        ) as kinds on kinds.category_id = s.category_id
        where (not s.recomputed or s.as_of = days.as_of)
            and {{ where }}
        group by days.as_of, s.user_id, s.category_id
    ) as per_type
{%- endmacro %}
