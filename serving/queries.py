"""SQL the service runs against PostgreSQL directly (not through Feast)."""

from __future__ import annotations


def audience_sql(schema: str, event_types: list[str]) -> str:
    """Users of category %(category)s whose interest decayed to %(now)s is at least %(min_interest)s, best
    first (at most %(limit)s), from dbt's int_interest_day_deltas (one column "interest_<type>" per event type
    in ``event_types``, see its docs): an exponential row decays from its day with its (category, type)
    half-life; a recomputed (logistic, period) row counts at the latest stored day only."""
    age = "extract(epoch from (%(now)s - s.as_of))::float8 / 86400.0"
    per_type = [
        f"""coalesce(case
                    when s.recomputed then s."interest_{t}"
                    when s."interest_{t}" <= 0 or ln(s."interest_{t}") - 0.6931471805599453::float8 * {age}
                        / k."half_life_{t}" < -690 then 0::float8
                    else s."interest_{t}" * power(0.5::float8, {age} / k."half_life_{t}") end, 0::float8)"""
        for t in event_types
    ]
    half_lives = "".join(
        f"""max(half_life_days) filter (where event_type = '{t}') as "half_life_{t}", """ for t in event_types
    )
    return f"""
        with latest as (select max(as_of) as as_of from {schema}.int_interest_day_deltas where user_id is null),
        kinds as (
            select {half_lives}category_id
            from {schema}.int_event_kind_parameters where category_id = %(category)s group by category_id
        ),
        scored as (
            select s.user_id, max(latest.as_of) as as_of, sum({" + ".join(per_type) or "0::float8"}) as interest
            from {schema}.int_interest_day_deltas as s
            cross join latest
            inner join kinds as k on k.category_id = s.category_id
            where s.category_id = %(category)s and (not s.recomputed or s.as_of = latest.as_of)
            group by s.user_id
        )
        select user_id, interest, as_of from scored
        where interest >= %(min_interest)s
        order by interest desc, user_id
        limit %(limit)s"""
