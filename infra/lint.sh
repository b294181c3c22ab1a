#!/usr/bin/env bash
# make lint: ruff (lint, then format check) on the Python code, sqlfluff on the dbt models.
# sqlfluff's dbt templater compiles every model, and some read the database while compiling (the event types
# from the seed, the interest deltas' plan): the raw tables, the seeds and the few upstream views they read
# are created first (idempotent, no events needed). A model sqlfluff had to skip fails the lint.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
ruff check . || status=1
ruff format --check . || status=1
python - <<'PY'
import psycopg

from interest_decay import config
from interest_decay.events import ingest

with psycopg.connect(config.pg_conninfo()) as conn:
    ingest.ensure_raw_schema(conn)
PY
(cd dbt_project && dbt seed -q && dbt run -q --select +int_event_kind_parameters)
log=$(mktemp)
sqlfluff lint dbt_project/models 2>&1 | tee "$log" | grep -v "^=== \[dbt templater\]" || status=1
if grep -q "Skipped file" "$log"; then echo "sqlfluff skipped a model (see above)"; status=1; fi
rm -f "$log"
exit $status
