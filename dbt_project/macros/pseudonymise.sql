{#- Keyed pseudonym of a user id, the SQL twin of interest_decay.events.pseudonym.pseudonymise:
    the first 32 hex digits of HMAC-SHA256(PSEUDONYM_KEY, user_id). The key is no part of the SQL: the
    connection hands it over as the session setting interest_decay.pseudonym_key (PGOPTIONS, see
    interest_decay.config.with_pseudonym_key_option), read once per statement by pseudonym_key(). -#}
{% macro pseudonymise(column) -%}
    left(encode(hmac(convert_to({{ column }}, 'UTF8'), convert_to((select {{ target.schema }}.pseudonym_key()), 'UTF8'), 'sha256'), 'hex'), 32)
{%- endmacro %}

{#- The session's pseudonym key, or a clear error when the connection did not set one. -#}
{% macro create_pseudonym_key_function() %}
create or replace function {{ target.schema }}.pseudonym_key() returns text
language plpgsql stable as $$
declare
    key text := current_setting('interest_decay.pseudonym_key', true);
begin
    if key is null or key = '' then
        raise exception 'PSEUDONYM_KEY is not set for this connection: run dbt with the environment of '
            'interest_decay.config.with_pseudonym_key_option (the DAG, the tests and `make` targets do)';
    end if;
    return key;
end
$$;
{% endmacro %}
