#!/bin/sh
# Compare remote_write with Prometheus 2.42 in agent mode: CPU seconds per
# million samples sent and RSS, in one run (see main.go).
#
#   bench/remotewrite/run.sh [-series 20000] [-interval 1s] [-window 60s] [-rounds 3]
set -eu
cd "$(dirname "$0")/../.."
scripts/ensure-deps.sh
bin="$(mktemp -d)/sluice"
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -trimpath -o "$bin" ./cmd/sluice
go run ./bench/remotewrite "$@" "$bin"
