{#- Keyed pseudonym of a user id, the SQL twin of interest_decay.events.pseudonym.pseudonymise:
    the first 32 hex digits of HMAC-SHA256(PSEUDONYM_KEY, user_id). -#}
{% macro pseudonymise(column) -%}
    left(encode(hmac(convert_to({{ column }}, 'UTF8'), convert_to('{{ env_var("PSEUDONYM_KEY") }}', 'UTF8'), 'sha256'), 'hex'), 32)
{%- endmacro %}
