{% macro create_try_timestamptz() %}
create or replace function {{ target.schema }}.try_timestamptz(value text) returns timestamptz
language plpgsql immutable as $$
begin
    return value::timestamptz;
exception when others then
    return null;
end
$$;
create or replace function {{ target.schema }}.try_float8(value text) returns float8
language plpgsql immutable as $$
begin
    return value::float8;
exception when others then
    return null;
end
$$
{% endmacro %}
