{#- This project's two materializations on PostgreSQL, each opt-in and each a short path in the common daily
    case; every other case goes to dbt's own materialization unchanged (dbt.materialization_*_default), so
    first runs, --full-refresh, schema changes, grants and persisted docs behave exactly as in dbt.

    - `incremental` with `direct_insert=true` (staging's two models, int_interest_day_deltas): the new rows go into
      the table in one statement. It keeps dbt's name because is_incremental() is true only for a model
      materialized 'incremental'; a model without direct_insert gets dbt's incremental, untouched.
    - `view_if_changed` (the intermediate folder's default, user_category_interest): a view whose SQL is
      unchanged is left as it is instead of re-created. -#}

{#- incremental, direct_insert, strategy append: dbt writes the new rows into a temp table, reads column lists
    from information_schema four times, then copies the temp table into the model's table. When the model's
    columns are the table's (by name: with on_schema_change ignore or append_new_columns dbt does not
    compare types either), one statement does the same: the new rows go straight into the table. (A daily
    run of int_interest_day_deltas on the 10M-event benchmark: bench-results/data_layer.json.) -#}
{% materialization incremental, adapter='postgres' %}
    {%- set existing = load_cached_relation(this) -%}
    {%- if not config.get('direct_insert') or config.get('incremental_strategy') != 'append'
            or existing is none or existing.is_view
            or (config.get('on_schema_change') or 'ignore') not in ('ignore', 'append_new_columns')
            or should_full_refresh() or config.get('grants') or config.get('persist_docs')
            or (config.get('contract') and config.get('contract').enforced) -%}
        {{ return(dbt.materialization_incremental_default()) }}
    {%- endif -%}
    {%- set columns = direct_insert_columns(this, sql) -%}
    {%- if columns is none -%}
        {{ return(dbt.materialization_incremental_default()) }}
    {%- endif -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}
    {%- set quoted = [] -%}
    {%- for column in columns -%}
        {%- do quoted.append(adapter.quote(column)) -%}
    {%- endfor %}
    {% call statement('main') -%}
        insert into {{ this }} ({{ quoted | join(', ') }})
        select {{ quoted | join(', ') }} from (
            {{ sql }}
        ) as new_rows
    {%- endcall %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do adapter.commit() %}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [this.incorporate(type='table')]}) }}
{% endmaterialization %}

{#- The columns of table `relation` in order, when the query `sql` returns the same set of columns; none when
    they differ (dbt's materialization then applies on_schema_change). The query is planned, not run. -#}
{% macro direct_insert_columns(relation, sql) %}
    {%- set table_columns = run_query(
        "select attname from pg_attribute where attrelid = '" ~ relation.include(database=false)
        ~ "'::regclass and attnum > 0 and not attisdropped order by attnum").columns[0].values() | list -%}
    {%- set query_columns = run_query("select * from (\n" ~ sql ~ "\n) as model where false").column_names | list -%}
    {{ return(table_columns if table_columns | sort == query_columns | sort else none) }}
{% endmacro %}

{#- view_if_changed: dbt re-creates a view on every run (create, rename, drop: an exclusive lock that waits for the view's
    readers). A view whose SQL is unchanged since this materialization created it (its md5 is kept in the
    view's comment) is left as it is. Hooks, grants, persisted docs (which own the comment) and --full-refresh
    always re-create it. Caveat: a view over `select *` keeps the columns it had when created. -#}
{% materialization view_if_changed, adapter='postgres' %}
    {%- set stamp = 'dbt sql md5 ' ~ local_md5(sql) -%}
    {%- set stamped = not (config.get('grants') or config.get('persist_docs')
                           or model.config.pre_hook or model.config.post_hook) -%}
    {%- if stamped and not should_full_refresh() -%}
        {%- set stored = run_query(
            "select obj_description(c.oid, 'pg_class') from pg_class c where c.relkind = 'v' and c.oid = "
            ~ "to_regclass('" ~ this.include(database=false) ~ "')").rows -%}
        {%- if stored and stored[0][0] == stamp -%}
            {% call noop_statement('main', 'UNCHANGED', 'UNCHANGED', 0) %}{% endcall %}
            {{ return({'relations': [this.incorporate(type='view')]}) }}
        {%- endif -%}
    {%- endif -%}
    {%- set result = dbt.materialization_view_default() -%}
    {%- if stamped -%}
        {#- run_query runs outside a transaction (autocommit) -#}
        {% do run_query("comment on view " ~ this ~ " is '" ~ stamp ~ "'") %}
    {%- endif -%}
    {{ return(result) }}
{% endmaterialization %}
