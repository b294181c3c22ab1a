#!/usr/bin/env bash
# Private PostgreSQL cluster for the local stack.
#   infra/postgres.sh start   initdb on first use, start, create the role and databases
#   infra/postgres.sh stop    stop this checkout's cluster (nothing else)
#   infra/postgres.sh status
# The server refuses to run as root, so as root its commands run as the postgres user.
set -euo pipefail
. "$(dirname "$0")/env.sh"

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  if ! is_local_cluster; then
    echo "PGHOST=$PGHOST is not local: using that server as it is."
    return 0
  fi
  [ -x "$PGBIN/pg_ctl" ] || { echo "PostgreSQL server binaries not found (apt-get install -y postgresql)"; exit 1; }
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    # the server's account owns its data dir, not the folder's other files (the pseudonym key stays root's)
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$(dirname "$PGDATA")" && chown -R postgres:postgres "$PGDATA"
    as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    echo "initialised cluster in $PGDATA"
  fi
  if as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    echo "PostgreSQL already running on port $PGPORT"
  else
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 \
      -o "-p $PGPORT -k /tmp -c listen_addresses=127.0.0.1 -c timezone=UTC -c max_connections=200 -c work_mem=$PG_WORK_MEM -c max_wal_size=$PG_MAX_WAL_SIZE" start >/dev/null
    echo "PostgreSQL started on 127.0.0.1:$PGPORT (data: $PGDATA)"
  fi
  psql_admin() { psql -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtAc "$1"; }
  [ "$(psql_admin "select 1 from pg_roles where rolname = '$PGUSER'")" = 1 ] ||
    psql_admin "create role \"$PGUSER\" login createdb"
  for db in "$PGDATABASE" "$AIRFLOW_DATABASE"; do
    [ "$(psql_admin "select 1 from pg_database where datname = '$db'")" = 1 ] ||
      psql_admin "create database \"$db\" owner \"$PGUSER\""
    psql_admin "alter database \"$db\" set timezone to 'UTC'"
  done
}

stop() {
  is_local_cluster || return 0
  if [ -s "$PGDATA/PG_VERSION" ] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null && echo "PostgreSQL stopped"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status ;;
  *) echo "usage: $0 start|stop|status"; exit 2 ;;
esac
