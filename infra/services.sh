#!/usr/bin/env bash
# Background services of the local stack, each in its own process group with a pid file:
#   infra/services.sh airflow-init      migrate the Airflow metadata database
#   infra/services.sh airflow           start the Airflow UI + scheduler (airflow standalone)
#   infra/services.sh serve [BENTO]     serve a bento (default: the latest interest_service); SERVE_REPLICAS=N:
#                                       N one-worker replicas behind nginx on SERVE_PORT (auto, the default:
#                                       one per core when nginx is installed; 1: one server of one worker per core)
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

stop_replicas() {  # the single server, or nginx and every replica of serve_replicas
  stop_group nginx
  for pid in "$RUN_DIR"/serve*.pid; do [ -e "$pid" ] && stop_group "$(basename "$pid" .pid)"; done
  return 0
}

nginx_path() {  # the nginx binary (Debian installs it in /usr/sbin, often not on a user's PATH); fails without one
  local found; found=$(command -v nginx || echo /usr/sbin/nginx)
  [ -x "$found" ] && echo "$found"
}

serve_replicas() {  # bento, n: n `bentoml serve` processes of one worker each on the ports after SERVE_PORT,
  # behind nginx on SERVE_PORT (least connections, keep-alive to the replicas, a failed replica skipped);
  # GET /replicas lists the paths /replica/1 ... /replica/n that reach one replica each.
  local nginx; nginx=$(nginx_path) || { echo "REPLICAS needs nginx: run  sudo apt-get install -y nginx"; exit 1; }
  local bento=$1 n=$2 port=$SERVE_PORT servers="" routes="" listed="" i ports=()
  for i in $(seq 1 "$n"); do
    port=$((port + 1))
    while ! port_free "$port"; do port=$((port + 1)); done
    # A BENTOML_HOME of its own, linked to the shared model store, bentos and champion registry: bentoml serve
    # empties its Prometheus directory (BENTOML_HOME/prometheus_multiproc_dir) when it starts, so in a shared
    # home each replica would wipe the metrics of those started before it.
    local home="$RUN_DIR/replica-$i/bentoml"
    mkdir -p "$home"
    for entry in models bentos envs champions.json; do ln -sfn "$BENTOML_HOME/$entry" "$home/$entry"; done
    BENTOML_HOME="$home" SERVE_WORKERS=1 start_group "serve-$i" bentoml serve "$bento" --host 127.0.0.1 --port "$port"
    ports+=("$port")
    servers="$servers    server 127.0.0.1:$port max_fails=1 fail_timeout=2s;"$'\n'
    # /replica/i/... reaches replica i alone (the deploy task checks each one serves the champion)
    routes="${routes:-}    location /replica/$i/ { proxy_pass http://127.0.0.1:$port/; }"$'\n'
    listed="${listed:+$listed, }\"/replica/$i\""
    sleep 1  # the port is taken before the next one is chosen
  done
  for i in $(seq 1 "$n"); do
    wait_http "http://127.0.0.1:${ports[i - 1]}/readyz" 180 "replica $i (bentoml serve)" "serve-$i"
  done
  mkdir -p "$RUN_DIR/nginx"
  cat > "$RUN_DIR/nginx.conf" <<NGINX
worker_processes 1;
pid $RUN_DIR/nginx/nginx.pid;
error_log $LOG_DIR/nginx.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;  # nginx's default (1000) closes a busy client's connection every 1000 requests
  client_body_temp_path $RUN_DIR/nginx/body;
  client_max_body_size ${SERVE_MAX_BODY_BYTES:-16777216};  # the service's own limit answers (a 413 with a message)
  proxy_temp_path $RUN_DIR/nginx/proxy;
  fastcgi_temp_path $RUN_DIR/nginx/fastcgi;
  uwsgi_temp_path $RUN_DIR/nginx/uwsgi;
  scgi_temp_path $RUN_DIR/nginx/scgi;
  upstream interest_service {
    least_conn;
$servers    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$SERVE_PORT;
    location / {
      proxy_pass http://interest_service;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_request_buffering off;  # bodies stream to the replica: no temp files (the workers may not write there)
    }
    location = /replicas { default_type application/json; return 200 '{"replicas": [$listed]}'; }
    error_page 413 = @too_large;  # nginx refuses what the service would: the same JSON message
    location @too_large {
      default_type application/json;
      return 413 '{"error": "request body larger than ${SERVE_MAX_BODY_BYTES:-16777216} bytes (SERVE_MAX_BODY_BYTES): send fewer events"}';
    }
$routes  }
}
NGINX
  start_group nginx "$nginx" -c "$RUN_DIR/nginx.conf" -p "$RUN_DIR/nginx" -g "daemon off;"
  wait_http "http://127.0.0.1:$SERVE_PORT/readyz" 30 "nginx" nginx
  echo "Serving $bento on http://127.0.0.1:$SERVE_PORT: nginx in front of $n replicas (logs: $LOG_DIR/serve-*.log)"
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
    # the generated admin password: readable by its owner only (the api-server writes it world-readable)
    chmod 600 "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated" 2> /dev/null || true
    echo "Airflow UI: http://127.0.0.1:$AIRFLOW__API__PORT  (user admin, password in"
    echo "  $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"
    ;;
  serve)
    bento=${2:-interest_service:latest}
    replicas=${SERVE_REPLICAS:-auto}
    if [ "$replicas" = auto ]; then  # one replica per core behind nginx when nginx is there, else one server
      if nginx_path > /dev/null; then replicas=$(nproc); else
        replicas=1; echo "(nginx is not installed: one server; apt-get install nginx balances one replica per core)"
      fi
    fi
    stop_replicas
    port_free "$SERVE_PORT" || { echo "port $SERVE_PORT is taken by another program; set SERVE_PORT"; exit 1; }
    if [ "$replicas" = 1 ]; then
      start_group serve bentoml serve "$bento" --host 127.0.0.1 --port "$SERVE_PORT"
      wait_http "http://127.0.0.1:$SERVE_PORT/readyz" 120 "bentoml serve" serve
      echo "Serving $bento on http://127.0.0.1:$SERVE_PORT"
    else
      serve_replicas "$bento" "$replicas"
    fi
    ;;
  stop)
    shift
    for name in "${@:-serve airflow redis postgres}"; do
      for one in $name; do
        case "$one" in
          serve) stop_replicas ;;
          airflow) stop_group "$one" ;;
          postgres) "$(dirname "$0")/postgres.sh" stop ;;
          redis) "$(dirname "$0")/redis.sh" stop ;;
          *) echo "unknown service $one (serve, airflow, redis, postgres)"; exit 2 ;;
        esac
      done
    done
    ;;
  *) echo "usage: $0 airflow-init|airflow|serve [BENTO]|stop"; exit 2 ;;
esac
