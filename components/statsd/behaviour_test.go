package statsd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

func TestTTL(t *testing.T) {
	h, r := startReceiver(t, udp+`
mapping_defaults {
  ttl = "1s"
}
mapping {
  match = "keep.*"
  name  = "keep"
  ttl   = "1h"
}
`)
	g := h.Gatherer()
	send(t, "udp", r.addr(t, "udp"), "keep.a:1|c\ngone:5|c")
	waitValue(t, g, "gone", nil, 5)
	waitValue(t, g, "keep", nil, 1)
	waitValue(t, h.Registry, "sluice_statsd_series", nil, 2)

	// The unmapped series expires with the defaults' TTL; the mapped one
	// with its own (an hour) stays.
	waitValue(t, g, "gone", nil, -1)
	if v := value(t, g, "keep", nil); v != 1 {
		t.Fatalf("keep = %v, want 1", v)
	}
	waitValue(t, h.Registry, "sluice_statsd_series", nil, 1)

	// A new event starts the series afresh.
	send(t, "udp", r.addr(t, "udp"), "gone:2|c")
	waitValue(t, g, "gone", nil, 2)
}

// TestTTLLabelledSeries: the registry does not keep a series' labels map
// (dropLabels); an expired series of each type is still deleted from its
// vector, by the labels the series writes, and the others stay.
func TestTTLLabelledSeries(t *testing.T) {
	h := pipelinetest.New(t, "statsd_receiver", udp+`
mapping_defaults {
  ttl = "1h"
}
mapping {
  match         = "sum.*"
  name          = "sum_seconds"
  labels        = { op = "$1" }
  observer_type = "summary"
}
`)
	r := h.Component.(*Receiver)
	// The shards' clock: an hour and a half later, c{a=2,b=2} is updated
	// again, and the sweep then removes every other series.
	now := time.Now()
	for _, s := range r.shards {
		s.clock = func() time.Time { return now }
	}
	p := r.newProcessor()
	p.packet([]byte("c:1|c|#a:1,b:2\nc:1|c|#a:2,b:2\ng:3|g|#a:1\nh:5|ms|#a:1\nsum.read:5|ms|#a:1\nsum.write:5|ms|#a:1"))
	// Apply on this goroutine: the shards are not running.
	apply := func() {
		for s, b := range p.pending {
			if b != nil {
				r.shards[s].apply(b)
			}
		}
		p.pending = make([]*batch, len(r.shards))
	}
	apply()
	if n := seriesCount(t, r.series()); n != 6 {
		t.Fatalf("%d series, want 6", n)
	}
	keep := map[string]string{"a": "2", "b": "2"}
	now = now.Add(90 * time.Minute)
	p.packet([]byte("c:0|c|#a:2,b:2"))
	apply()
	now = now.Add(31 * time.Minute)
	for _, s := range r.shards {
		s.sweep()
	}
	if n := seriesCount(t, r.series()); n != 1 || value(t, r.series(), "c", keep) != 1 {
		t.Fatalf("after the sweep: %d series (want 1), c%v = %v", n, keep, value(t, r.series(), "c", keep))
	}
	if n := r.total.Load(); n != 1 {
		t.Fatalf("total = %d, want 1", n)
	}
	// An expired series comes back afresh.
	p.packet([]byte("h:7|ms|#a:1"))
	apply()
	if v := value(t, r.series(), "h", map[string]string{"a": "1"}); v != 1 {
		t.Fatalf("h{a=1} count = %v, want 1", v)
	}
}

func TestMaxSeries(t *testing.T) {
	h, r := startReceiver(t, udp+`
max_series = 5
mapping_defaults {
  ttl = "1s"
}
mapping {
  match = "req.*"
  name  = "req_total"
  labels = { path = "$1" }
  ttl   = "1h"
}
`)
	g := h.Gatherer()
	send(t, "udp", r.addr(t, "udp"), strings.Join(lines("req.p%d:1|c", 8), "\n"))
	waitValue(t, h.Registry, "statsd_exporter_events_error_total", map[string]string{"reason": "max_series"}, 3)
	if n := seriesCount(t, g); n != 5 {
		t.Fatalf("%d series, want 5", n)
	}
	// Existing series still update at the limit.
	send(t, "udp", r.addr(t, "udp"), "req.p0:1|c\nreq.p1:1|c\nreq.p2:1|c\nreq.p3:1|c\nreq.p4:1|c\nreq.p5:1|c\nreq.p6:1|c\nreq.p7:1|c")
	waitValue(t, h.Registry, "statsd_exporter_events_error_total", map[string]string{"reason": "max_series"}, 6)
	total := 0.0
	for i := range 8 {
		if v := value(t, g, "req_total", map[string]string{"path": fmt.Sprintf("p%d", i)}); v > 0 {
			total += v
		}
	}
	if total != 10 || seriesCount(t, g) != 5 {
		t.Fatalf("want 5 series with 10 events in all, got %d series with %v", seriesCount(t, g), total)
	}
	if v := value(t, h.Registry, "sluice_statsd_series", nil); v != 5 {
		t.Fatalf("sluice_statsd_series = %v", v)
	}

	// Raising the limit admits new series.
	if err := h.Update(udp + "max_series = 6\nmapping_defaults {\n  ttl = \"1s\"\n}\nmapping {\n  match = \"req.*\"\n  name = \"req_total\"\n  labels = { path = \"$1\" }\n  ttl = \"1h\"\n}\n"); err != nil {
		t.Fatal(err)
	}
	send(t, "udp", r.addr(t, "udp"), "other:1|c")
	waitValue(t, g, "other", nil, 1)
	// ... and expired series free their slot.
	waitValue(t, g, "other", nil, -1)
	send(t, "udp", r.addr(t, "udp"), "another:1|c")
	waitValue(t, g, "another", nil, 1)
}

// recorder counts log records.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }
func (r *recorder) warnings() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.records {
		if rec.Level >= slog.LevelWarn {
			n++
		}
	}
	return n
}

func TestBadInput(t *testing.T) {
	rec := &recorder{}
	h, r := startReceiver(t, udp+`
listen_tcp = "127.0.0.1:0"
mapping {
  match      = "^empty\\.name\\.(.*)$"
  match_type = "regex"
  name       = "$${1}"
}
`, pipelinetest.WithLogger(slog.New(rec)))
	g := h.Gatherer()
	// One packet: bad lines among good ones; the good ones still count.
	send(t, "udp", r.addr(t, "udp"), strings.Join([]string{
		"good.one:1|c",
		"malformed",
		"bad.type:1|x",
		"set.type:1|s",
		"bad.value:abc|c",
		"bad.tag:1|c|#novalue",
		"mixed,a=b:1|c|#c:d",
		"reserved:1|c|#__name__:x",
		"negative:-1|c",
		"conflict:1|c",
		"conflict:1|g",
		"empty.name.:1|c",
		"good.two:1|c",
	}, "\n"))
	sampleErr := func(reason string) map[string]string { return map[string]string{"reason": reason} }
	waitValue(t, h.Registry, "statsd_exporter_lines_total", nil, 13)
	waitValue(t, g, "good_one", nil, 1)
	waitValue(t, g, "good_two", nil, 1)
	waitValue(t, g, "bad_tag", nil, 1) // the bad tag is dropped, the sample kept
	waitValue(t, g, "conflict", nil, 1)
	for _, c := range []struct {
		metric string
		labels map[string]string
		want   float64
	}{
		{"statsd_exporter_sample_errors_total", sampleErr("malformed_line"), 1},
		{"statsd_exporter_sample_errors_total", sampleErr("illegal_event"), 2},
		{"statsd_exporter_sample_errors_total", sampleErr("malformed_value"), 1},
		{"statsd_exporter_sample_errors_total", sampleErr("mixed_tagging_styles"), 1},
		{"statsd_exporter_tag_errors_total", nil, 1},
		{"statsd_exporter_events_error_total", sampleErr(reasonInvalidLabel), 1},
		{"statsd_exporter_events_error_total", sampleErr(reasonNegativeCounter), 1},
		{"statsd_exporter_events_error_total", sampleErr(reasonEmptyName), 1},
		{"statsd_exporter_events_conflict_total", map[string]string{"type": "gauge", "metric_name": "conflict"}, 1},
		{"statsd_exporter_events_total", map[string]string{"type": "counter"}, 4},
	} {
		waitValue(t, h.Registry, c.metric, c.labels, c.want)
	}
	for _, n := range familyNames(t, g) {
		if n == "reserved" || n == "negative" || n == "" {
			t.Errorf("a bad event made it into %q", n)
		}
	}

	// An over-long TCP line is counted and skipped; the connection goes on.
	c, err := net.Dial("tcp", r.addr(t, "tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	long := "tcp.long:" + strings.Repeat("9", DefaultMaxLineLength+10) + "|c\n"
	if _, err := c.Write([]byte("tcp.before:1|c\n" + long + "tcp.after:1|c\n")); err != nil {
		t.Fatal(err)
	}
	waitValue(t, h.Registry, "statsd_exporter_tcp_too_long_lines_total", nil, 1)
	waitValue(t, g, "tcp_before", nil, 1)
	waitValue(t, g, "tcp_after", nil, 1)
	if _, err := c.Write([]byte("tcp.later:1|c\n")); err != nil {
		t.Fatal(err)
	}
	waitValue(t, g, "tcp_later", nil, 1)

	// A flood of bad lines is logged at a bounded rate and counted in full.
	before := rec.warnings()
	send(t, "udp", r.addr(t, "udp"), strings.Repeat("garbage\n", 500))
	waitValue(t, h.Registry, "statsd_exporter_sample_errors_total", sampleErr("malformed_line"), 501)
	if n := rec.warnings() - before; n > 10 {
		t.Fatalf("%d warnings logged for 500 bad lines, want at most 10", n)
	}
	if rec.warnings() == 0 {
		t.Fatal("bad input was not logged at all")
	}
}
