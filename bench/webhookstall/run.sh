#!/usr/bin/env bash
# Measures what stalled unauthenticated webhook deliveries cost the built
# binary: CONNS connections each announce a 20 MB Standard Webhooks
# delivery with a signature that is well-formed but wrong, send SEND_MB,
# then stall. Reports the agent's peak anonymous RSS over its idle RSS,
# the answers, and how long the stalled connections stay open (the body
# read timeout cuts them; HOLD seconds at most).
#
#   bash bench/webhookstall/run.sh                    # builds ./cmd/sluice; CONNS=30 SEND_MB=8 HOLD=40
#   BIN=/tmp/sluice-before bash bench/webhookstall/run.sh
#
# 127.0.0.1 only; needs curl and python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CONNS=${CONNS:-30} SEND_MB=${SEND_MB:-8} HOLD=${HOLD:-40}
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

BIN=${BIN:-}
if [ -z "$BIN" ]; then
  (cd "$root" && go build -trimpath -o "$work/sluice" ./cmd/sluice)
  BIN=$work/sluice
fi
sp=$(freeport); ap=$(freeport)
cat > "$work/bench.hcl" <<HCL
webhook_receiver "bench" {
  listen = "127.0.0.1:$sp"
  auth { tokens = ["bench-t0ken"] }
  metric "m" { type = "gauge" }
  webhook "std" {
    kind   = "generic"
    secret = "whsec_c2VjcmV0LWtleS1ieXRlcw=="
    rule {
      set {
        metric = "m"
        value  = event.v
      }
    }
  }
}
HCL
"$BIN" run --server.http.listen-addr "127.0.0.1:$ap" --storage.path "$work/data" "$work/bench.hcl" >"$work/sluice.log" 2>&1 &
pid=$!
until curl -sf "http://127.0.0.1:$sp/metrics" >/dev/null; do sleep 0.1; done
echo "binary: $BIN; $CONNS connections x $SEND_MB MB sent of 20 MB announced; loadavg: $(cat /proc/loadavg)"
python3 - "$sp" "$pid" "$CONNS" "$SEND_MB" "$HOLD" <<'PY'
import socket, sys, threading, time
port, pid, conns, send_mb, hold = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def anon():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("RssAnon:"):
            return int(l.split()[1])
base = anon()
results = {}
def one(i):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(hold)
    ts = int(time.time())
    s.sendall((f"POST /hooks/std HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20000000\r\n"
               f"webhook-id: msg_{i}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: v1,AAAA\r\n\r\n").encode())
    chunk = b"x" * 65536
    try:
        for _ in range(send_mb * 16):
            s.sendall(chunk)
    except OSError:
        pass
    start = time.time()
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except socket.timeout:
        pass
    except OSError:
        pass
    code = data.split(b" ")[1].decode() if data.startswith(b"HTTP/") else "closed-without-answer" if time.time() - start < hold else "still-open"
    results[i] = (code, time.time() - start)
threads = [threading.Thread(target=one, args=(i,)) for i in range(conns)]
for t in threads: t.start()
peak = base
while any(t.is_alive() for t in threads):
    peak = max(peak, anon())
    time.sleep(0.1)
codes = {}
for c, d in results.values():
    n, longest = codes.get(c, (0, 0))
    codes[c] = (n + 1, max(longest, d))
print(f"peak RssAnon over idle: {(peak - base) / 1024:.0f} MiB (idle {base / 1024:.0f} MiB)")
for c, (n, longest) in sorted(codes.items()):
    print(f"  {c}: {n} connections, open up to {longest:.1f} s after sending")
PY
