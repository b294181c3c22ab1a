{#- The days interest_snapshots computes this run, and the snapshot it can start from.

    window: the run's as_of days (vars as_of_start .. as_of; defaults from the data).
    Full mode (first run, --full-refresh, or parameters changed since the base snapshot): every
    window day is computed from all events.
    Incremental mode: days from the latest stored day (or the window start, if later) to the window end
    are computed from the latest stored snapshot before them (the base) plus the events that snapshot
    did not count: those loaded after it (load_id > its watermark, late events included) or dated at
    or after its day. Exponential kinds decay the base exactly (S(t2) = S(t1) * 0.5^((t2 - t1) / h));
    other families have no exact incremental form and are recomputed from their events. -#}
{% macro interest_snapshot_plan() %}
    {%- set plan = {'first_day': none, 'last_day': none, 'base_day': none, 'base_watermark': none, 'fingerprint': none,
                    'recomputed_kinds': 0} -%}
    {%- if not execute -%}
        {{ return(plan) }}
    {%- endif -%}
    {%- set window = run_query(
        "select (" ~ as_of_start_date() ~ ")::text, (" ~ as_of_date() ~ ")::text, "
        ~ "(select md5(coalesce(string_agg(p::text, ',' order by p::text), '')) from " ~ ref('int_decay_parameters') ~ " p) || "
        ~ "(select md5(coalesce(string_agg(w::text, ',' order by w::text), '')) from " ~ ref('event_type_weights') ~ " w)"
    ).rows[0] -%}
    {%- do plan.update({'first_day': window[0], 'last_day': window[1], 'fingerprint': window[2]}) -%}
    {%- if is_incremental() -%}
        {%- do plan.update({'recomputed_kinds': run_query(
            "select count(*) from " ~ ref('int_event_kind_parameters') ~ " where family <> 'exponential'").rows[0][0]}) -%}
        {%- set latest = run_query("select max(as_of at time zone 'UTC')::date::text from " ~ this).rows[0][0] -%}
        {%- if latest and plan.first_day < latest <= plan.last_day -%}
            {%- do plan.update({'first_day': latest}) -%}
        {%- endif -%}
        {%- set base = run_query(
            "select (as_of at time zone 'UTC')::date::text, max(watermark_load_id), max(parameters_fingerprint) from " ~ this
            ~ " where as_of < (date '" ~ plan.first_day ~ "'::timestamp at time zone 'UTC')"
            ~ " group by as_of order by as_of desc limit 1"
        ).rows -%}
        {%- if base and base[0][2] == plan.fingerprint -%}
            {%- do plan.update({'base_day': base[0][0], 'base_watermark': base[0][1]}) -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(plan) }}
{% endmacro %}
