#!/usr/bin/env bash
# Installs what `make test` needs beyond Go modules, when it is missing:
# a PostgreSQL server (the postgres_source tests start a throwaway one).
# Idempotent and quiet when everything is present.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -x "$here/ensure-postgres.sh" ] || [ -f "$here/ensure-postgres.sh" ]; then
  bash "$here/ensure-postgres.sh"
fi
