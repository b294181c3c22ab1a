#!/usr/bin/env bash
# Private PostgreSQL cluster for the local stack.
#   infra/postgres.sh start   initdb on first use, start, create the role and databases; every connection must
#                             give a password (scram-sha-256): $PGUSER's is PGPASSWORD (infra/env.sh makes
#                             it), the superuser's sits beside the data dir (postgres-admin.password, 0600)
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
  local admin_password
  admin_password=$(private_secret "$(dirname "$PGDATA")/postgres-admin.password" "the PostgreSQL admin password")
  # Statements arrive on stdin: a password never shows in a process list.
  psql_admin() { PGPASSWORD="$admin_password" psql -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
  [ "$(psql_admin -c "select 1 from pg_roles where rolname = '$PGUSER'")" = 1 ] ||
    psql_admin -c "create role \"$PGUSER\" login createdb"
  printf '%s\n' "set password_encryption = 'scram-sha-256';" "alter role postgres password '${admin_password//\'/\'\'}';" \
    "alter role \"$PGUSER\" password '${PGPASSWORD//\'/\'\'}';" | psql_admin > /dev/null
  if grep -qE '^[^#]*[[:space:]]trust([[:space:]]|$)' "$PGDATA/pg_hba.conf"; then
    # A new cluster (initdb trusts local connections until the passwords are set), or one made before passwords.
    printf '%s\n' "# infra/postgres.sh: every connection gives its password" \
      "local all all scram-sha-256" "host all all 127.0.0.1/32 scram-sha-256" "host all all ::1/128 scram-sha-256" |
      as_pg tee "$PGDATA/pg_hba.conf" > /dev/null
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" reload > /dev/null
    echo "PostgreSQL asks every connection for its password now (scram-sha-256)"
  fi
  for db in "$PGDATABASE" "$AIRFLOW_DATABASE"; do
    [ "$(psql_admin -c "select 1 from pg_database where datname = '$db'")" = 1 ] ||
      psql_admin -c "create database \"$db\" owner \"$PGUSER\""
    psql_admin -c "alter database \"$db\" set timezone to 'UTC'"
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
