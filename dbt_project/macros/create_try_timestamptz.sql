{#- Casts that answer null instead of failing, so staging can say why a row is rejected.
    Only ISO 8601 dates and timestamps are timestamps: PostgreSQL's special inputs ('now',
    'yesterday', 'epoch', 'infinity') are not, and a value without an offset is read as UTC. -#}
{% macro create_try_timestamptz() %}
create or replace function {{ target.schema }}.try_timestamptz(value text) returns timestamptz
language plpgsql immutable as $$
begin
    if value !~ '^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)?$' then
        return null;
    end if;
    if value ~ '(Z|[+-]\d{2}(:?\d{2})?)$' then
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
    return value::float8;
exception when others then
    return null;
end
$$
{% endmacro %}
