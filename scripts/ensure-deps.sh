#!/usr/bin/env bash
# Installs what `make test` needs beyond Go modules, when it is missing:
# - a PostgreSQL server: the postgres_source tests start a throwaway one;
# - gunicorn: the statsd_receiver test drives a real gunicorn.
# Idempotent and quiet when everything is present (Debian/Ubuntu, apt-get).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/ensure-postgres.sh"

if ! command -v gunicorn >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "ensure-deps: need root (or sudo) to apt-get install gunicorn" >&2; exit 1; }
    sudo=sudo
  fi
  echo "ensure-deps: installing gunicorn (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends gunicorn >/dev/null
fi
