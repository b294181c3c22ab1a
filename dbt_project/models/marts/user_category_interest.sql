{{ config(materialized='view_if_changed') }}

{#- A view: interest at every day from the first to the last stored day of int_interest_day_deltas, read at
    query time (a filter on as_of reaches the day list, so one day costs one pass over the rows up to it). #}
with stored as (
    select min(as_of) as first_as_of, max(as_of) as last_as_of from {{ ref('int_interest_day_deltas') }}
    where user_id is null  {#- the days' marker rows (partial index) #}
),

days as (
    select day as as_of
    from stored, generate_series(stored.first_as_of, stored.last_as_of, interval '1 day') as day
),

final as (
    {{ interest_read('select as_of from days') }}
)

select * from final
