#!/bin/sh
# Make sure a PostgreSQL server (initdb, pg_ctl) is installed for the tests
# that start a throwaway server (internal/testing/pgtest). Quiet and idempotent:
# does nothing when /usr/lib/postgresql/*/bin/initdb exists.
set -eu
for f in /usr/lib/postgresql/*/bin/initdb; do
	[ -x "$f" ] && exit 0
done
if ! command -v apt-get >/dev/null 2>&1; then
	echo "ensure-postgres: no PostgreSQL server found and no apt-get; install PostgreSQL (initdb, pg_ctl) or set PGTEST_BINDIR" >&2
	exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
		echo "ensure-postgres: need root (or sudo) to apt-get install postgresql" >&2
		exit 1
	fi
fi
echo "ensure-postgres: installing postgresql (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
