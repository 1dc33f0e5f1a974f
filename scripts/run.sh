#!/usr/bin/env bash
# Embedded default: SQLite under var/, Celery in-process, demo data, portal on :8000.
# Beside the web server: `tick` (the periodic tasks: schedules, lapse sweeps, metric roll-ups,
# delivery retries) and, unless SIMULATE=0, `simulate` streaming live demo events.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p var
if [ -z "${SECRET_KEY:-}" ]; then
  [ -s var/secret_key ] || $PY -c "import secrets; print(secrets.token_urlsafe(50))" > var/secret_key
  SECRET_KEY=$(cat var/secret_key)
  export SECRET_KEY
fi
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
$PY manage.py migrate --noinput
# The demo sandbox: data, audiences and a month of daily batch jobs (about seven minutes the
# first time on two cores, with progress bars; instant after). DEMO_ARGS="--no-history" opens faster
# without the month of charts.
$PY manage.py demo ${DEMO_ARGS:-}

pids=()
cleanup() {
  for pid in "${pids[@]}"; do pkill -TERM -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

$PY manage.py tick > var/tick.log 2>&1 &
pids+=($!)
if [ "${SIMULATE:-1}" != "0" ]; then
  $PY manage.py simulate --rate "${SIMULATE_RATE:-20}" > var/simulate.log 2>&1 &
  pids+=($!)
  echo "Streaming about ${SIMULATE_RATE:-20} live events/s into the demo (SIMULATE=0 turns it off)."
fi
echo
echo "Sift is serving at http://$HOST:$PORT  (admin/admin, marketer/marketer). Ctrl-C stops it."
# One process with threads: in the embedded default, Celery tasks run inside it.
.venv/bin/gunicorn portal.wsgi --bind "$HOST:$PORT" --workers 1 --threads 8 \
  --timeout 120 --graceful-timeout 5 --log-level warning &
pids+=($!)
wait "${pids[-1]}"
