#!/usr/bin/env bash
# Make sure a Redis server answers at $REDIS_URL (default 127.0.0.1:6379); start one if not.
# The Redis tests are never skipped: if none can be had, this fails with a clear message.
set -euo pipefail
PY=${PY:-.venv/bin/python}
URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
ping() { "$PY" -c "import redis,sys; redis.Redis.from_url('$URL', socket_timeout=2).ping()" 2>/dev/null; }
if ping; then echo "redis: $URL answers"; exit 0; fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis: nothing answers at $URL and redis-server is not installed (apt-get install redis-server)" >&2
  exit 1
fi
echo "redis: nothing answers at $URL; starting redis-server on 127.0.0.1:6379"
redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
for _ in $(seq 1 50); do ping && { echo "redis: started"; exit 0; }; sleep 0.1; done
echo "redis: started redis-server but $URL still does not answer" >&2
exit 1
