#!/usr/bin/env bash
# Background services of the local stack, each in its own process group with a pid file:
#   infra/services.sh airflow-init      migrate the Airflow metadata database
#   infra/services.sh airflow           start the Airflow UI + scheduler (airflow standalone)
#   infra/services.sh serve [BENTO]     serve a bento (default: the latest interest_service)
#   infra/services.sh stop [NAME ...]   stop what this script started, then PostgreSQL
#                                       (or only the named ones: serve, airflow, postgres)
set -euo pipefail
. "$(dirname "$0")/env.sh"
RUN_DIR="$DECAY_STATE_DIR/run"
LOG_DIR="$DECAY_STATE_DIR/logs"
mkdir -p "$RUN_DIR" "$LOG_DIR"

running() { [ -s "$RUN_DIR/$1.pid" ] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

start_group() {  # name, command...: run in a new session so the whole group can be stopped
  local name=$1; shift
  setsid "$@" >"$LOG_DIR/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN_DIR/$name.pid"
}

stop_group() {
  local name=$1
  if running "$name"; then
    local pgid; pgid=$(cat "$RUN_DIR/$name.pid")
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pgid" 2>/dev/null || true
    echo "stopped $name"
  fi
  rm -f "$RUN_DIR/$name.pid"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_http() {  # url, seconds, name, [pid name that must stay alive]
  for _ in $(seq 1 "$2"); do
    if [ -n "${4:-}" ] && ! running "$4"; then echo "$3 exited; its log: $LOG_DIR/$4.log"; tail -5 "$LOG_DIR/$4.log"; return 1; fi
    curl -sf -o /dev/null "$1" && return 0
    sleep 1
  done
  echo "$3 did not answer at $1; see its log in $LOG_DIR"; return 1
}

case "${1:-}" in
  airflow-init)
    mkdir -p "$AIRFLOW_HOME"
    airflow db migrate >"$LOG_DIR/airflow-migrate.log" 2>&1 || { tail -20 "$LOG_DIR/airflow-migrate.log"; exit 1; }
    echo "Airflow metadata database ready ($AIRFLOW_DATABASE on $PGHOST:$PGPORT)"
    ;;
  airflow)
    if ! running airflow; then
      port_free "$AIRFLOW__API__PORT" || { echo "port $AIRFLOW__API__PORT is taken by another program; set AIRFLOW__API__PORT"; exit 1; }
      start_group airflow airflow standalone
    fi
    wait_http "http://127.0.0.1:$AIRFLOW__API__PORT/api/v2/monitor/health" 180 "Airflow" airflow
    echo "Airflow UI: http://127.0.0.1:$AIRFLOW__API__PORT  (user admin, password in"
    echo "  $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"
    ;;
  serve)
    bento=${2:-interest_service:latest}
    stop_group serve
    port_free "$SERVE_PORT" || { echo "port $SERVE_PORT is taken by another program; set SERVE_PORT"; exit 1; }
    start_group serve bentoml serve "$bento" --host 127.0.0.1 --port "$SERVE_PORT"
    wait_http "http://127.0.0.1:$SERVE_PORT/readyz" 120 "bentoml serve" serve
    echo "Serving $bento on http://127.0.0.1:$SERVE_PORT"
    ;;
  stop)
    shift
    for name in "${@:-serve airflow redis postgres}"; do
      for one in $name; do
        case "$one" in
          serve|airflow) stop_group "$one" ;;
          postgres) "$(dirname "$0")/postgres.sh" stop ;;
          redis) "$(dirname "$0")/redis.sh" stop ;;
          *) echo "unknown service $one (serve, airflow, redis, postgres)"; exit 2 ;;
        esac
      done
    done
    ;;
  *) echo "usage: $0 airflow-init|airflow|serve [BENTO]|stop"; exit 2 ;;
esac
