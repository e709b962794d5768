#!/bin/sh
# Compare postgres_source with Debian's prometheus-postgres-exporter on this
# machine: statements per scrape at one scrape a second, and scrape latency
# while a query takes 5 s. Installs PostgreSQL and the exporter if missing.
#
#   bench/postgres/run.sh [-duration 30s] [-interval 15s]
set -eu
cd "$(dirname "$0")/../.."
scripts/ensure-postgres.sh
if [ ! -x /usr/bin/prometheus-postgres-exporter ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "installing prometheus-postgres-exporter (Debian package)" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq prometheus-postgres-exporter >/dev/null
	# The package enables a service; the bench runs its own instance.
	$SUDO systemctl disable --now prometheus-postgres-exporter >/dev/null 2>&1 || true
fi
exec go run ./bench/postgres "$@"
