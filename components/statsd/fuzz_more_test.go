package statsd

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// datagramSep splits a fuzz input into datagrams (an ASCII record
// separator, which the fuzzer finds quickly and statsd gives no meaning).
const datagramSep = 0x1e

// FuzzDatagrams sends arbitrary multi-line datagrams to a running receiver
// over a real UDP socket, so they go through the socket reader (recvmmsg
// on Linux, several datagrams per call), the line splitter, the parser,
// the mapping and the shards. Each input is cut into up to 16 datagrams at
// 0x1e bytes. It waits until the receiver counted every datagram, then
// checks that no panic had to be recovered and that gathering works. Run
// it with
//
//	go test -run '^$' -fuzz FuzzDatagrams -fuzztime 60s ./components/statsd/
func FuzzDatagrams(f *testing.F) {
	for _, s := range []string{
		"a:1|c\nb:2|g\n\nc:3|ms",
		"a:1|c\x1eb:2|g\x1elat:5|ms|@0.5|#route:/x",
		"app.requests:3|c\napp.errors:1|c\napp.queue.depth:10|g\napp.queue.depth:+5|g\napp.queue.depth:-3|g",
		"gunicorn.request.status.200:1|c\ngunicorn.requests:1|m\ngunicorn.request.duration:12.5|ms\ngunicorn.workers:4|g",
		"h.x:1|h|#le:2\r\nsum.x:1|ms|#quantile:1\x1e\n\n\n",
		"a:1|c|@0\na:1|c|@-1\na:NaN|g\na:1e309|g\x1ex,le=1:1|d",
		"shop.x.orders:2|c|#shop:y\nshop.y.orders:1|c\x1eshop.x.orders:-1|c",
		"a" + strings.Repeat(":1", 100) + "|c",
	} {
		f.Add([]byte(s))
	}
	h := pipelinetest.New(f, "statsd_receiver", `
listen_udp = "127.0.0.1:0"
max_series = 5000
mapping {
  match         = "sum.*"
  name          = "sum_$1"
  observer_type = "summary"
}
mapping {
  match  = "shop.*.orders"
  name   = "orders_total"
  labels = { shop = "$1" }
}
mapping {
  match  = "gunicorn.request.status.*"
  name   = "gunicorn_requests_by_status_total"
  labels = { status = "$1" }
}
`)
	h.Start()
	r := h.Component.(*Receiver)
	var addr string
	pipelinetest.Eventually(f, 10*time.Second, func() bool { addr = r.Addrs()["udp"]; return addr != "" }, "UDP socket never bound")
	conn, err := net.Dial("udp", addr)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { conn.Close() })

	f.Fuzz(func(t *testing.T, data []byte) {
		var datagrams [][]byte
		for _, d := range bytes.Split(data, []byte{datagramSep}) {
			if len(d) > 0 && len(d) <= 8192 && len(datagrams) < 16 {
				datagrams = append(datagrams, d) // the reader skips empty datagrams
			}
		}
		before := testutil.ToFloat64(r.m.udpPackets)
		for _, d := range datagrams {
			if _, err := conn.Write(d); err != nil {
				t.Fatal(err)
			}
		}
		want := before + float64(len(datagrams))
		deadline := time.Now().Add(10 * time.Second)
		for testutil.ToFloat64(r.m.udpPackets) < want {
			if time.Now().After(deadline) {
				t.Fatalf("the receiver counted %v datagrams of %v", testutil.ToFloat64(r.m.udpPackets)-before, len(datagrams))
			}
			time.Sleep(50 * time.Microsecond)
		}
		if n := testutil.ToFloat64(r.m.errorEventStats.WithLabelValues(reasonPanic)); n != 0 {
			t.Fatalf("%v panics recovered ingesting %q", n, data)
		}
		if _, err := r.series().Gather(); err != nil {
			t.Fatalf("gather after %q: %v", data, err)
		}
	})
}

// FuzzMappingFile feeds arbitrary mapping YAML (statsd_exporter's format)
// through the component's Provision (read, parse, compile with the
// mapping blocks), and when it is accepted, builds a receiver with it and
// ingests a few lines through the compiled mapping. A bad file must be a
// diagnostic, never a panic. Run it with
//
//	go test -run '^$' -fuzz FuzzMappingFile -fuzztime 60s ./components/statsd/
func FuzzMappingFile(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("..", "..", "config", "examples", "gunicorn-mapping.yml")); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"mappings:\n- match: \"a.*\"\n  name: \"a_$1\"\n",
		"mappings:\n- match: \"a.*\"\n  name: \"not-valid-name\"\n",
		"mappings: [\n",
		"mappings:\n- match: a.b\n  name: a_b\n  colour: blue\n",
		"defaults:\n  observer_type: histogram\n",
		"mappings:\n- match: lat.*\n  name: lat\n  observer_type: histogram\n  labels:\n    le: $1\n",
		"mappings:\n- match: lat.*\n  name: lat\n  labels:\n    quantile: $1\n",
		"defaults:\n  observer_type: histogram\n  buckets: [0.1, 1]\n  ttl: 1m\nmappings:\n- match: '^x_(.*)$'\n  match_type: regex\n  name: x_${1}\n  action: map\n  scale: 0.001\n- match: drop.*\n  action: drop\n  name: dropped\n- match: s.*\n  name: s\n  observer_type: summary\n  summary_options:\n    quantiles:\n    - quantile: 0.5\n      error: 0.05\n",
		"mappings:\n- match: a.*.*\n  name: a\n  labels:\n    b: $1\n    c: $2\n    d: $3\n  match_metric_type: counter\n  honor_labels: true\n",
	} {
		f.Add([]byte(s))
	}
	lines := []byte("a.b:1|c\nx_y:2|ms\nlat.1:3|h\ns.q:4|ms\ngunicorn.request.status.200:1|c\na.b.c:1|c|#b:z\ndrop.me:1|g")
	f.Fuzz(func(t *testing.T, yml []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "mapping.yml"), yml, 0o644); err != nil {
			t.Fatal(err)
		}
		body := "listen_udp = \"127.0.0.1:0\"\nmapping_file = \"mapping.yml\"\nmax_series = 100\n"
		_, diags := pipelinetest.Decode(t, "statsd_receiver", body, pipelinetest.WithConfigDir(dir))
		if diags.HasErrors() {
			if diags.Error() == "" {
				t.Fatal("an empty diagnostic")
			}
			return
		}
		h, err := pipelinetest.TryNew(t, "statsd_receiver", body, pipelinetest.WithConfigDir(dir))
		if err != nil {
			t.Fatalf("decoded but not built: %v", err)
		}
		r := h.Component.(*Receiver)
		p := r.newProcessor()
		p.packet(lines)
		p.flush()
		if n := testutil.ToFloat64(r.m.errorEventStats.WithLabelValues(reasonPanic)); n != 0 {
			t.Fatalf("%v panics recovered with mapping\n%s", n, yml)
		}
		if _, err := r.series().Gather(); err != nil {
			t.Fatalf("gather with mapping\n%s\n: %v", yml, err)
		}
	})
}
