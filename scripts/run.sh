#!/usr/bin/env bash
# Embedded default: SQLite under var/, Celery in-process, demo data, portal on :8000.
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
$PY manage.py demo
echo
echo "Sift is serving at http://$HOST:$PORT  (admin/admin, marketer/marketer). Ctrl-C stops it."
# One process with threads: in the embedded default, Celery tasks run inside it.
exec .venv/bin/gunicorn portal.wsgi --bind "$HOST:$PORT" --workers 1 --threads 8 \
  --timeout 120 --graceful-timeout 5 --log-level warning
