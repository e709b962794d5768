#!/usr/bin/env bash
# Measures what one large webhook delivery costs the built binary: peak RSS
# (VmHWM) and CPU time of the agent process for one POST of an 8 MB JSON
# body (a GitLab-like job event with a long commits array) to a
# webhook_receiver whose rule reads five fields. A fresh agent per round,
# so that each peak is one delivery's.
#
#   bash bench/jsonbody/run.sh                      # builds ./cmd/sluice, ROUNDS=3 SIZE_MB=8
#   BIN=/tmp/sluice-before bash bench/jsonbody/run.sh   # an already built binary
#   SHAPE=dense bash bench/jsonbody/run.sh          # commits are small objects of numbers (the most values per byte)
#
# 127.0.0.1 only; needs curl and python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ROUNDS=${ROUNDS:-3} SIZE_MB=${SIZE_MB:-8} SHAPE=${SHAPE:-commits}

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
tck=$(getconf CLK_TCK)

BIN=${BIN:-}
if [ -z "$BIN" ]; then
  (cd "$root" && go build -trimpath -o "$work/sluice" ./cmd/sluice)
  BIN=$work/sluice
fi

python3 - "$SIZE_MB" "$SHAPE" > "$work/event.json" <<'PY'
import json, sys
size, shape = int(sys.argv[1]) << 20, sys.argv[2]
def commit(i):
    if shape == "dense":
        return {"a": i % 10, "b": [1, 2], "c": {"d": 0}}
    return {"id": "%040x" % i, "message": "fix: " + "x" * 60, "timestamp": "2021-02-23T02:41:37Z",
            "author": {"name": "A. Developer", "email": "a@example.com"}, "added": ["a.go"], "modified": ["b.go", "c.go"]}
ev = {"object_kind": "build", "build_status": "success", "build_duration": 94.311,
      "project_name": "sluice", "build_stage": "test", "commits": []}
per = len(json.dumps(commit(0), separators=(",", ":"))) + 1
ev["commits"] = [commit(i) for i in range((size - 300) // per)]
json.dump(ev, sys.stdout, separators=(",", ":"))
PY
bytes=$(stat -c %s "$work/event.json")

sp=$(freeport); ap=$(freeport)
cat > "$work/bench.hcl" <<HCL
webhook_receiver "bench" {
  listen           = "127.0.0.1:$sp"
  insecure_no_auth = true
  metric "ci_job_duration_seconds" {
    type   = "histogram"
    labels = ["project", "stage", "status"]
  }
  webhook "jobs" {
    kind     = "gitlab"
    max_body = 33554432
    rule {
      when = event.object_kind == "build" && event.build_status != "running"
      observe {
        metric = "ci_job_duration_seconds"
        value  = event.build_duration
        labels = { project = event.project_name, stage = event.build_stage, status = event.build_status }
      }
    }
  }
}
HCL

echo "binary: $BIN; body: $bytes bytes; loadavg: $(cat /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  "$BIN" run --server.http.listen-addr "127.0.0.1:$ap" "$work/bench.hcl" >"$work/sluice.log" 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$sp/metrics" >/dev/null; do sleep 0.1; done
  hwm0=$(hwm_kib "$pid"); t0=$(cpu_ticks "$pid")
  start=$(date +%s.%N)
  out=$(curl -s -w ' %{http_code}' -X POST -H 'Content-Type: application/json' --data-binary "@$work/event.json" "http://127.0.0.1:$sp/hooks/jobs")
  end=$(date +%s.%N)
  t1=$(cpu_ticks "$pid"); hwm1=$(hwm_kib "$pid")
  printf 'round %d: answer %-40s wall %.2fs  cpu %.2fs  peak RSS %d MiB (idle %d MiB)  (peak-idle)/body %.1fx\n' "$r" "$(echo "$out" | tr -d '\n')" \
    "$(echo "$end - $start" | bc)" "$(echo "($t1 - $t0) / $tck" | bc -l)" $((hwm1 / 1024)) $((hwm0 / 1024)) "$(echo "($hwm1 - $hwm0) * 1024 / $bytes" | bc -l)"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
