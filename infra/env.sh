# Settings of the local stack, sourced by the Makefile recipes and the infra scripts.
# Every value comes from the environment when set; these are the working defaults
# for the embedded stack (private PostgreSQL on loopback, SQLite online store).
# interest_decay/config.py reads the same variables with the same defaults.

PROJECT_ROOT="${PROJECT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export PROJECT_ROOT
export DECAY_STATE_DIR="${DECAY_STATE_DIR:-$PROJECT_ROOT/.state}"
export VENV="${VENV:-$PROJECT_ROOT/.venv}"

# PostgreSQL: a private cluster bound to 127.0.0.1 that asks every connection for a password (scram-sha-256; the
# generated one below). Point PG* at any other server (and set PGPASSWORD) to use it instead.
export PGHOST="${PGHOST:-127.0.0.1}"
export PGPORT="${PGPORT:-55432}"
export PGUSER="${PGUSER:-decay}"
export PGPASSWORD="${PGPASSWORD:-}"
export PGSSLMODE="${PGSSLMODE:-prefer}"
export PGDATABASE="${PGDATABASE:-interest}"
# The cluster's data dir lives outside the checkout so the postgres user can reach it
# even when the checkout sits under a private home; one cluster per checkout.
_checkout_id=$(printf '%s' "$PROJECT_ROOT" | cksum | cut -d' ' -f1)
export PGDATA="${PGDATA:-/var/tmp/interest-decay-$_checkout_id/pgdata}"
# Memory of one sort or hash in a query of the private cluster: the marts group millions of keys, which
# PostgreSQL's default (4MB) spills to disk (see docs/benchmarks.md, data layer). Takes effect when the cluster starts.
export PG_WORK_MEM="${PG_WORK_MEM:-256MB}"
# WAL written between two checkpoints: with PostgreSQL's 1GB, ingesting and staging 10M events started a
# checkpoint every few seconds (its log said "checkpoints are occurring too frequently"), whose writes
# competed with the runs. Takes effect when the cluster starts.
export PG_MAX_WAL_SIZE="${PG_MAX_WAL_SIZE:-4GB}"
export PGBIN="${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}"
# True when PGHOST is this machine's loopback: the private cluster is the server (infra/postgres.sh).
is_local_cluster() { [ "$PGHOST" = 127.0.0.1 ] || [ "$PGHOST" = localhost ]; }
# Prints the secret kept in file $1 (32 random bytes as hex, made when missing), named $2 in messages. Its path is
# predictable (it may sit in a shared temporary dir): only a file this user owns and no one else can read or write
# is used, never one another user could have planted or read.
private_secret() {
  if [ ! -s "$1" ]; then
    mkdir -p "$(dirname "$1")"
    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$1")
  fi
  if [ "$(stat -c %u "$1")" != "$(id -u)" ] || [ $((8#$(stat -c %a "$1") & 8#077)) != 0 ]; then
    echo "refusing $2 $1: it must belong to $(id -un) with mode 0600" \
      "(it is $(stat -c '%U, mode %a' "$1")); remove it if you did not create it, or fix it" >&2
    return 1
  fi
  cat "$1"
}

# Key of the user-id pseudonyms (interest_decay/events/pseudonym.py), unless the environment provides it: a random
# one kept beside the data it pseudonymised, i.e. next to the private cluster's data dir (a checkout deleted
# and cloned again at the same path finds its cluster, whose staged pseudonyms need the same key; `make clean`
# deletes both), or in the state dir when the server is another one. A key kept in the state dir before is
# moved beside the cluster.
if [ -z "${PSEUDONYM_KEY:-}" ]; then
  if is_local_cluster; then
    _key_file="$(dirname "$PGDATA")/pseudonym.key"
    [ -s "$_key_file" ] || [ ! -s "$DECAY_STATE_DIR/pseudonym.key" ] ||
      { mkdir -p "$(dirname "$_key_file")" && chmod 600 "$DECAY_STATE_DIR/pseudonym.key" &&
        mv "$DECAY_STATE_DIR/pseudonym.key" "$_key_file"; }
  else
    _key_file="$DECAY_STATE_DIR/pseudonym.key"
  fi
  # (Run as root, infra/postgres.sh used to give the cluster's folder, key included, to the server's account
  # "postgres", which is trusted with the data anyway: such a key is taken back.)
  if [ -s "$_key_file" ] && [ "$(id -u)" = 0 ] && [ "$(stat -c %U "$_key_file")" = postgres ]; then
    chown root:root "$_key_file"
  fi
  PSEUDONYM_KEY=$(private_secret "$_key_file" "the pseudonym key") || { unset _key_file; return 1 2> /dev/null || exit 1; }
  unset _key_file
fi
export PSEUDONYM_KEY
# dbt's SQL reads the key from the session setting interest_decay.pseudonym_key, never from its own text (so no
# compiled SQL, rendered template or server log holds it): every PostgreSQL session started from this environment
# gets it through PGOPTIONS (interest_decay.config.with_pseudonym_key_option does the same for Python's children).
_key_option=${PSEUDONYM_KEY//\\/\\\\}
PGOPTIONS="$(printf %s "${PGOPTIONS:-}" | sed -E 's/-c ?interest_decay[.]pseudonym_key=([\\].|[^ ])*//') -c interest_decay.pseudonym_key=${_key_option// /\\ }"
export PGOPTIONS="${PGOPTIONS# }"
unset _key_option
# The private cluster's password for $PGUSER (infra/postgres.sh sets it), kept like the key: every client (dbt,
# Airflow, Feast, the service) reads PGPASSWORD, so a re-cloned checkout finds it again.
if [ -z "$PGPASSWORD" ] && is_local_cluster; then
  PGPASSWORD=$(private_secret "$(dirname "$PGDATA")/postgres.password" "the PostgreSQL password") || return 1 2> /dev/null || exit 1
  export PGPASSWORD
fi

# dbt writes its models into this schema; raw events live in schema "raw".
export DBT_SCHEMA="${DBT_SCHEMA:-analytics}"
export DBT_PROFILES_DIR="${DBT_PROFILES_DIR:-$PROJECT_ROOT/dbt_project}"
export DBT_SEND_ANONYMOUS_USAGE_STATS=False

# Airflow keeps its metadata in its own database on the same server.
export AIRFLOW_HOME="${AIRFLOW_HOME:-$DECAY_STATE_DIR/airflow}"
export AIRFLOW_DATABASE="${AIRFLOW_DATABASE:-airflow}"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-postgresql+psycopg2://$PGUSER${PGPASSWORD:+:$PGPASSWORD}@$PGHOST:$PGPORT/$AIRFLOW_DATABASE}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$PROJECT_ROOT/dags}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-2}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"  # the UI and API on loopback (Airflow's default: every interface)
# Task processes report to the API server's execution API: it must follow the API port.
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://127.0.0.1:$AIRFLOW__API__PORT/execution/}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}"

# Feast: file registry and SQLite online store in the state dir, PostgreSQL offline store.
export FEAST_REPO_PATH="${FEAST_REPO_PATH:-$PROJECT_ROOT/feature_repo}"
export FEAST_REGISTRY_PATH="${FEAST_REGISTRY_PATH:-$DECAY_STATE_DIR/feast/registry.db}"
export FEAST_ONLINE_PATH="${FEAST_ONLINE_PATH:-$DECAY_STATE_DIR/feast/online.db}"
export FEAST_USAGE=False
# Feast setup: sqlite (embedded default: file registry, SQLite online store) or redis (Redis online store
# from infra/redis.sh, registry in PostgreSQL: feature_repo/feature_store.redis.yaml).
export FEAST_ONLINE_STORE="${FEAST_ONLINE_STORE:-sqlite}"
export REDIS_HOST="${REDIS_HOST:-127.0.0.1}"
export REDIS_PORT="${REDIS_PORT:-56379}"
export REDIS_DB="${REDIS_DB:-0}"
# The private Redis (infra/redis.sh) requires this password, kept like the pseudonym key (mode 0600, in the
# state dir). REDIS_PASSWORD given empty: a Redis that asks for none (another server of your own).
if [ -z "${REDIS_PASSWORD+set}" ]; then
  REDIS_PASSWORD=$(private_secret "$DECAY_STATE_DIR/redis.password" "the Redis password") || return 1 2> /dev/null || exit 1
fi
export REDIS_PASSWORD
if [ "$FEAST_ONLINE_STORE" = redis ]; then
  export FEAST_FS_YAML_FILE_PATH="${FEAST_FS_YAML_FILE_PATH:-$FEAST_REPO_PATH/feature_store.redis.yaml}"
fi

# BentoML model store and bentos, and the serving port.
export BENTOML_HOME="${BENTOML_HOME:-$DECAY_STATE_DIR/bentoml}"
export BENTOML_DO_NOT_TRACK=True
export SERVE_PORT="${SERVE_PORT:-3000}"
export SERVE_REPLICAS="${SERVE_REPLICAS:-auto}"  # make serve: replicas behind nginx (auto: one per core if nginx is installed)

# Reports (drift, metrics) and the demo's generated events.
export REPORTS_DIR="${REPORTS_DIR:-$DECAY_STATE_DIR/reports}"
export EVENTS_DIR="${EVENTS_DIR:-$DECAY_STATE_DIR/events}"
export EVENTS_EARLIEST_DAY="${EVENTS_EARLIEST_DAY:-1990-01-01}"  # events before it are rejects (interest_decay/config.py)
export PATH="$VENV/bin:$PATH"
export AIRFLOW__COSMOS__ENABLE_TELEMETRY=False
