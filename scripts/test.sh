#!/usr/bin/env bash
# Runs the whole suite on SQLite; under CI=true (or TEST_POSTGRES=1) again on PostgreSQL.
# Redis and a real Celery worker are used by the `services` tests in both passes; under CI a
# missing service is started, and if it still is not there the run fails (never skips).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export SIFT_TESTING=1
export DJANGO_ALLOW_ASYNC_UNSAFE=true
export SIFT_TEST_REDIS_URL=${SIFT_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
PG_URL=${SIFT_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/sift}
WORKERS=${TEST_WORKERS:-2}
mkdir -p artifacts var

is_ci() { [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; }

ensure_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian's chromium for the browser tests..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
  fi
  if [ ! -x /usr/bin/chromium ]; then
    if is_ci; then echo "chromium is required under CI and could not be installed" >&2; exit 1; fi
    echo "chromium not installed: browser tests will skip (run as root to install it)."
  fi
}

ensure_redis() {
  if ! redis-cli -u "$SIFT_TEST_REDIS_URL" ping >/dev/null 2>&1; then
    if command -v redis-server >/dev/null; then
      redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir /tmp >/dev/null 2>&1 || true
      for _ in $(seq 1 20); do redis-cli -u "$SIFT_TEST_REDIS_URL" ping >/dev/null 2>&1 && break; sleep 0.25; done
    fi
  fi
  if ! redis-cli -u "$SIFT_TEST_REDIS_URL" ping >/dev/null 2>&1 && is_ci; then
    echo "Redis is required under CI and is not reachable at $SIFT_TEST_REDIS_URL" >&2; exit 1
  fi
}

ensure_postgres() {
  if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
    if command -v pg_ctlcluster >/dev/null; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
      for _ in $(seq 1 40); do pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && break; sleep 0.25; done
    fi
  fi
  pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 || { echo "PostgreSQL is not reachable" >&2; exit 1; }
}

ensure_chromium
if is_ci; then ensure_redis; else command -v redis-cli >/dev/null && ensure_redis || true; fi

echo "== ruff =="
$PY -m ruff check .

echo "== pytest on SQLite =="
$PY -m pytest -n "$WORKERS" "$@"

if is_ci || [ "${TEST_POSTGRES:-}" = "1" ]; then
  ensure_postgres
  echo "== pytest on PostgreSQL =="
  DATABASE_URL=$PG_URL $PY -m pytest -n "$WORKERS" "$@"
fi
