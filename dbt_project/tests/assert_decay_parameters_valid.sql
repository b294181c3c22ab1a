-- Fails on every parameter row its family cannot use. Tiny positive rates are refused too: they
-- decay nothing measurable and would underflow float8 arithmetic (PostgreSQL raises on underflow).
select *
from {{ ref('int_decay_parameters') }}
where (family = 'exponential' and not coalesce(half_life_days >= 1e-3, false))
   or (family = 'logistic' and not coalesce(logistic_k >= 1e-3 and (logistic_l = 0 or logistic_l >= 1e-9), false))
   or (family = 'period' and not coalesce(
        period_days > 0
        and period_weights[1] = 1
        and not exists (
            select 1 from generate_subscripts(period_weights, 1) as i
            where period_weights[i] < 0 or (i > 1 and period_weights[i] > period_weights[i - 1])
        ), false))
