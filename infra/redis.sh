#!/usr/bin/env bash
# Private Redis for the Feast online store (selected with FEAST_ONLINE_STORE=redis).
#   infra/redis.sh start    start redis-server on 127.0.0.1:$REDIS_PORT (no persistence); as root it
#                           installs the redis-server package first when it is missing
#   infra/redis.sh stop     shut it down
#   infra/redis.sh status
set -euo pipefail
. "$(dirname "$0")/env.sh"

cli() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }

start() {
  if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing redis-server (apt-get)"
      apt-get install -y -qq redis-server >/dev/null 2>&1 || { echo "apt-get install redis-server failed"; exit 1; }
    else
      echo "redis-server not found: install it (apt-get install -y redis-server)"; exit 1
    fi
  fi
  if cli ping >/dev/null 2>&1; then
    echo "Redis already running on $REDIS_HOST:$REDIS_PORT"
    return 0
  fi
  mkdir -p "$DECAY_STATE_DIR/logs"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --logfile "$DECAY_STATE_DIR/logs/redis.log" --dir /tmp
  for _ in $(seq 1 50); do cli ping >/dev/null 2>&1 && { echo "Redis started on $REDIS_HOST:$REDIS_PORT"; return 0; }; sleep 0.1; done
  echo "Redis did not start; see $DECAY_STATE_DIR/logs/redis.log"; exit 1
}

case "${1:-}" in
  start) start ;;
  stop) if command -v redis-cli >/dev/null && cli ping >/dev/null 2>&1; then cli shutdown nosave >/dev/null 2>&1 || true; echo "Redis stopped"; fi ;;
  status) cli ping ;;
  *) echo "usage: $0 start|stop|status"; exit 2 ;;
esac
