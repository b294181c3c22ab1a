{#- Casts that answer null instead of failing, so staging can say why a row is rejected. They accept what
    interest_decay/events/rules.py defines (the patterns come from macros/event_rules.sql, generated from it):
    a timestamp is ISO 8601 with ASCII digits, read as UTC without an offset (PostgreSQL's special inputs
    'now', 'yesterday', 'epoch', 'infinity' are not timestamps); a number is a decimal or inf / infinity /
    nan, and one beyond a double's range is none. -#}
{% macro create_try_timestamptz() %}
create or replace function {{ target.schema }}.try_timestamptz(value text) returns timestamptz
language plpgsql immutable as $$
begin
    if value !~ {{ event_timestamp_pattern() }} then
        return null;
    end if;
    if value ~ ':[0-9]{2}([.][0-9]+)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$' then  -- an offset after the time
        return value::timestamptz;
    end if;
    return value::timestamp at time zone 'UTC';
exception when others then
    return null;
end
$$;
create or replace function {{ target.schema }}.try_float8(value text) returns float8
language plpgsql immutable as $$
begin
    if value !~ {{ event_number_pattern() }} and value !~ {{ event_special_number_pattern() }} then
        return null;
    end if;
    return value::float8;
exception when others then
    return null;
end
$$
{% endmacro %}
