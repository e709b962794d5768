#!/usr/bin/env bash
# Benchmarks webhook_receiver against Debian's prometheus-pushgateway (1.5)
# on this machine, in one run: authenticated pushes of the same histogram
# series with persistence on for both (Sluice: fsync before every reply,
# group-committed; Pushgateway: --persistence.file, written every
# --persistence.interval, default 5m), interleaved rounds, requests/s and
# CPU per request from /proc; then memory per series with SERIES distinct
# series in each.
#
#   bash bench/webhook/run.sh            # ROUNDS=3 DURATION=10s CONNS=32 SERIES=10000
#
# Installs prometheus-pushgateway and wrk with apt-get when missing (only
# for this script, not for make test). 127.0.0.1 only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10s} CONNS=${CONNS:-32} SERIES=${SERIES:-10000}
export SERIES

need() {
  command -v "$1" >/dev/null 2>&1 && return
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}
need prometheus-pushgateway prometheus-pushgateway
need wrk wrk

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
tck=$(getconf CLK_TCK)

(cd "$root" && go build -trimpath -o "$work/sluice" ./cmd/sluice)
sp=$(freeport); ap=$(freeport); gp=$(freeport)
cat > "$work/bench.hcl" <<HCL
webhook_receiver "bench" {
  listen = "127.0.0.1:$sp"
  auth { tokens = ["bench-t0ken"] }
  metric "deployment_duration_seconds" {
    type       = "histogram"
    labels     = ["pipeline", "status"]
    buckets    = [60, 300, 900, 1800, 3600, 7200, 14400, 28800]
    max_series = 100000
  }
}
HCL

start_sluice() {
  rm -rf "$work/sluice-data"
  "$work/sluice" run --server.http.listen-addr "127.0.0.1:$ap" --storage.path "$work/sluice-data" "$work/bench.hcl" >"$work/sluice.log" 2>&1 &
  spid=$!; pids+=("$spid")
  until curl -sf "http://127.0.0.1:$sp/metrics" >/dev/null; do sleep 0.1; done
}
start_pgw() {
  rm -f "$work/pgw.state"
  prometheus-pushgateway --web.listen-address "127.0.0.1:$gp" --web.config.file "$here/pushgateway-web.yml" \
    --persistence.file "$work/pgw.state" >"$work/pgw.log" 2>&1 &
  gpid=$!; pids+=("$gpid")
  until curl -sf -u bench:bench-t0ken "http://127.0.0.1:$gp/metrics" >/dev/null; do sleep 0.1; done
}

# run_wrk NAME PID URL SCRIPT: prints "NAME req/s cpu_us/req"
run_wrk() {
  local c0 c1 out rps reqs non2xx
  c0=$(cpu_ticks "$2")
  out=$(wrk -t2 -c"$CONNS" -d"$DURATION" -s "$4" "$3")
  c1=$(cpu_ticks "$2")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out"); non2xx=${non2xx:-0}
  [ "$non2xx" = 0 ] || { echo "$1: $non2xx non-2xx responses" >&2; echo "$out" >&2; exit 1; }
  awk -v n="$1" -v r="$rps" -v q="$reqs" -v c=$((c1 - c0)) -v t="$tck" 'BEGIN { printf "%-11s %10.0f req/s %8.1f us CPU/req\n", n, r, c / t * 1e6 / q }'
}

echo "# throughput: wrk -t2 -c$CONNS -d$DURATION, $ROUNDS interleaved rounds, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
start_sluice; start_pgw
for r in $(seq "$ROUNDS"); do
  run_wrk sluice "$spid" "http://127.0.0.1:$sp/api/deployment_duration_seconds/observe" "$here/sluice-observe.lua"
  run_wrk pushgateway "$gpid" "http://127.0.0.1:$gp/metrics/job/deploy" "$here/pushgateway-push.lua"
done
kill "$spid" "$gpid"; wait "$spid" "$gpid" 2>/dev/null || true

echo "# memory: $SERIES distinct histogram series (8 buckets) in each"
start_sluice
r0=$(rss_kib "$spid")
wrk -t2 -c"$CONNS" -d"${SERIES_DURATION:-20s}" -s "$here/sluice-series.lua" "http://127.0.0.1:$sp/api/deployment_duration_seconds/observe" >/dev/null
got=$(curl -s "http://127.0.0.1:$sp/metrics" | grep -c '^deployment_duration_seconds_count')
sleep 2; r1=$(rss_kib "$spid")
echo "sluice      series=$got rss_delta=$(( (r1 - r0) )) KiB  $(( (r1 - r0) * 1024 / got )) B/series"

start_pgw
r0=$(rss_kib "$gpid")
python3 - "$SERIES" >"$work/series.txt" <<'PY'
import sys
n = int(sys.argv[1])
print("# TYPE deployment_duration_seconds histogram")
for i in range(n):
    l = 'pipeline="p%d",status="success"' % i
    for le in ["60", "300", "900", "1800", "3600", "7200", "14400", "28800", "+Inf"]:
        print('deployment_duration_seconds_bucket{%s,le="%s"} %d' % (l, le, 1 if le in ("300",) or le in ("900","1800","3600","7200","14400","28800","+Inf") else 0))
    print("deployment_duration_seconds_sum{%s} 100" % l)
    print("deployment_duration_seconds_count{%s} 1" % l)
PY
curl -sf -u bench:bench-t0ken --data-binary "@$work/series.txt" "http://127.0.0.1:$gp/metrics/job/deploy" >/dev/null
got=$(curl -s -u bench:bench-t0ken "http://127.0.0.1:$gp/metrics" | grep -c '^deployment_duration_seconds_count')
sleep 2; r1=$(rss_kib "$gpid")
echo "pushgateway series=$got rss_delta=$(( (r1 - r0) )) KiB  $(( (r1 - r0) * 1024 / got )) B/series (one push of all series into one group)"
