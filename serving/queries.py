"""SQL the service runs against PostgreSQL directly (not through Feast)."""

from __future__ import annotations


def audience_sql(schema: str, event_types: list[str]) -> str:
    """Users of category %(category)s whose interest decayed to %(now)s is at least %(min_interest)s, best
    first (at most %(limit)s).

    Composed of dbt's pieces, not a copy of them: the interest at the latest stored day is dbt's view
    ``user_category_interest`` (macro ``interest_read``; one column "interest_<type>" per event type in
    ``event_types``), and each exponential kind's part decays on from that day to %(now)s with dbt's function
    ``decay_multiplier`` (exact: S(now) = S(day) · 0.5^((now − day) / h)). Logistic and period kinds are
    recomputed per stored day: their part counts at its value of the latest stored day."""
    parts = ", ".join(f"""('{t}', u."interest_{t}")""" for t in event_types) or "(null, null::float8)"
    age = "extract(epoch from (%(now)s - u.as_of))::float8 / 86400.0"
    return f"""
        with latest as (select max(as_of) as as_of from {schema}.int_interest_day_deltas where user_id is null),
        per_kind as (
            select u.user_id, u.as_of, t.interest, case
                when k.family <> 'exponential' then 1::float8
                else {schema}.decay_multiplier(k.family, {age}, k.half_life_days, k.logistic_k, k.logistic_l,
                                               k.period_days, k.period_weights) end as multiplier
            from {schema}.user_category_interest as u
            cross join lateral (values {parts}) as t (event_type, interest)
            inner join {schema}.int_event_kind_parameters as k
                on k.category_id = u.category_id and k.event_type = t.event_type
            where u.category_id = %(category)s and u.as_of = (select as_of from latest)
        ),
        scored as (
            select user_id, max(as_of) as as_of, sum(case
                -- a float8 product below about 1e-308 raises in PostgreSQL: it counts as 0
                when interest is null or interest <= 0 or multiplier <= 0 then 0::float8
                when ln(interest) + ln(multiplier) < -690 then 0::float8
                else interest * multiplier end) as interest
            from per_kind
            group by user_id
        )
        select user_id, interest, as_of from scored
        where interest >= %(min_interest)s
        order by interest desc, user_id
        limit %(limit)s"""
