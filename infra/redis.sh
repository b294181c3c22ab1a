#!/usr/bin/env bash
# Private Redis for the Feast online store (selected with FEAST_ONLINE_STORE=redis).
#   infra/redis.sh start    start redis-server on 127.0.0.1:$REDIS_PORT (no persistence), requiring
#                           $REDIS_PASSWORD (infra/env.sh); as root it installs the redis-server package first
#                           when it is missing
#   infra/redis.sh stop     shut it down
#   infra/redis.sh status
set -euo pipefail
. "$(dirname "$0")/env.sh"

# The password reaches redis-cli and redis-server through the environment and stdin, never a command line.
cli() { REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }

start() {
  if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing redis-server (apt-get)"
      apt-get install -y -qq redis-server >/dev/null 2>&1 || { echo "apt-get install redis-server failed"; exit 1; }
    else
      echo "redis-server not found: install it (apt-get install -y redis-server)"; exit 1
    fi
  fi
  if [ -n "$REDIS_PASSWORD" ] && redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
    echo "a Redis without a password answers on $REDIS_HOST:$REDIS_PORT: stop it (infra/redis.sh stop) and start again"
    exit 1
  fi
  if cli ping 2>/dev/null | grep -q PONG; then
    echo "Redis already running on $REDIS_HOST:$REDIS_PORT"
    return 0
  fi
  mkdir -p "$DECAY_STATE_DIR/logs"
  printf 'requirepass "%s"\n' "$REDIS_PASSWORD" | redis-server - --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --logfile "$DECAY_STATE_DIR/logs/redis.log" --dir /tmp > /dev/null
  for _ in $(seq 1 50); do cli ping 2>/dev/null | grep -q PONG && { echo "Redis started on $REDIS_HOST:$REDIS_PORT"; return 0; }; sleep 0.1; done
  echo "Redis did not start; see $DECAY_STATE_DIR/logs/redis.log"; exit 1
}

case "${1:-}" in
  start) start ;;
  stop) if command -v redis-cli >/dev/null && cli ping 2>/dev/null | grep -q PONG; then cli shutdown nosave >/dev/null 2>&1 || true; echo "Redis stopped"; fi ;;
  status) cli ping ;;
  *) echo "usage: $0 start|stop|status"; exit 2 ;;
esac
