package statsd

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// Issue 7: one statsd line with a label client_golang reserves (quantile
// on a summary, le on a histogram) panicked inside a shard with its lock
// held and stopped all ingestion for good, while the component reported
// healthy. Now it is a counted drop, and the next line is ingested.
func TestReservedLabelLineIsDroppedNotWedging(t *testing.T) {
	const body = `
mapping_defaults {
  observer_type = "histogram"
}
mapping {
  match         = "sum.*"
  name          = "sum_$1"
  observer_type = "summary"
}
`
	// Each style's bad lines: le on a histogram (the defaults' type here),
	// quantile on a summary, for each observer type (ms, h, d).
	styles := map[string][]string{
		"dogstatsd": {"lat:1|ms|#le:0.5", "lat:1|h|#le:0.5", "lat:1|d|#le:0.5", "sum.lat:1|ms|#quantile:0.5"},
		"influx":    {"lat,le=0.5:1|ms", "lat,le=0.5:1|h", "sum.lat,quantile=0.5:1|d"},
		"librato":   {"lat#le=0.5:1|ms", "lat#le=0.5:1|d", "sum.lat#quantile=0.5:1|h"},
		"signalfx":  {"lat[le=0.5]:1|ms", "lat[le=0.5]:1|h", "sum.lat[quantile=0.5]:1|ms"},
	}
	for _, proto := range []string{"udp", "tcp", "unixgram"} {
		t.Run(proto, func(t *testing.T) {
			sock := sockPath(t)
			listen := map[string]string{
				"udp":      udp,
				"tcp":      "listen_udp = \"\"\nlisten_tcp = \"127.0.0.1:0\"\n",
				"unixgram": "listen_udp = \"\"\nlisten_unixgram = \"" + sock + "\"\n",
			}[proto]
			h, r := startReceiver(t, listen+body)
			addr := sock
			if proto != "unixgram" {
				addr = r.addr(t, proto)
			}
			g := h.Gatherer()
			want := 0.0
			n := 0
			for style, bad := range styles {
				for _, l := range bad {
					n++
					// The bad line alone, then a good one: the good one
					// proves the reader and the shard still work.
					send(t, proto, addr, l)
					want++
					good := fmt.Sprintf("after_%s_%d", style, n)
					send(t, proto, addr, good+":1|ms")
					waitValue(t, g, good, nil, 1)
					waitValue(t, h.Registry, "statsd_exporter_events_error_total", map[string]string{"reason": reasonReservedLabel}, want)
				}
			}
			// The same metrics, well-formed, still work.
			send(t, proto, addr, "lat:1|ms|#path:x", "sum.lat:1|ms|#path:x")
			waitValue(t, g, "lat", map[string]string{"path": "x"}, 1)
			waitValue(t, g, "sum_lat", map[string]string{"path": "x"}, 1)
			if v := value(t, h.Registry, "statsd_exporter_events_error_total", map[string]string{"reason": reasonPanic}); v != 0 {
				t.Errorf("%v panics recovered: the label check should have dropped the events first", v)
			}
			if hs := r.Health(); hs.State != pipeline.HealthHealthy {
				t.Errorf("health after bad lines: %+v", hs)
			}
			// Stopping is prompt and leaves no socket file.
			if err := h.Stop(); err != nil {
				t.Fatal(err)
			}
			if proto == "unixgram" {
				if _, err := os.Stat(sock); !os.IsNotExist(err) {
					t.Errorf("socket file left behind: %v", err)
				}
			}
		})
	}
}

// Item 11: NaN and infinite values, and sample rates outside (0, 1], are
// dropped and counted instead of stored (a NaN counter stayed NaN
// forever); a valid sample rate still scales.
func TestNonFiniteValuesAndSampleRates(t *testing.T) {
	h, r := startReceiver(t, udp+`
mapping_defaults {
  observer_type = "histogram"
}
`)
	g := h.Gatherer()
	reason := func(r string) map[string]string { return map[string]string{"reason": r} }
	send(t, "udp", r.addr(t, "udp"), strings.Join([]string{
		"c:NaN|c", "c:Inf|c", "c:1|c|@1e-320", // +Inf after the rate
		"g:NaN|g", "g:-Inf|g", "g:+Inf|g",
		"h:NaN|ms", "h:Inf|h", "h:-Inf|d",
	}, "\n"))
	waitValue(t, h.Registry, "statsd_exporter_events_error_total", reason(reasonNonFinite), 9)
	send(t, "udp", r.addr(t, "udp"), strings.Join([]string{
		"c:1|c|@NaN", "c:1|c|@0", "c:1|c|@-0.5", "c:1|c|@2", "c:1|c|@Inf",
		"g:1|g|@NaN", "h:1|ms|@2", "h:1|h|@0",
	}, "\n"))
	waitValue(t, h.Registry, "statsd_exporter_events_error_total", reason(reasonSampleRate), 8)
	// A timer repeated 1/rate times: a tiny rate would be billions of
	// events (and memory); so would many values at a small rate.
	send(t, "udp", r.addr(t, "udp"), "h:1|ms|@1e-9\nh:1|ms|@1e-320\nh:"+strings.TrimSuffix(strings.Repeat("1:", 100), ":")+"|ms|@0.001")
	waitValue(t, h.Registry, "statsd_exporter_events_error_total", reason(reasonTooManyEvents), 3)

	// Nothing of the above was stored; good events are.
	send(t, "udp", r.addr(t, "udp"), "c:1|c\nc:1|c|@0.5\ng:5|g\nh:1|ms|@0.25\nh:1:2|ms|@0.5")
	waitValue(t, g, "c", nil, 3)
	waitValue(t, g, "g", nil, 5)
	waitValue(t, g, "h", nil, 4+2*2)
	if hs := r.Health(); hs.State != pipeline.HealthHealthy {
		t.Errorf("health: %+v", hs)
	}
}

func TestSampleRateProblem(t *testing.T) {
	for line, want := range map[string]string{
		"a:1|c":                      "",
		"a:1|c|@0.1":                 "",
		"a:1|c|@1":                   "",
		"a:1|c|@abc":                 "", // upstream counts it and uses 1
		"a:1|c|@0":                   reasonSampleRate,
		"a:1|c|@1.5":                 reasonSampleRate,
		"a:1|g|@NaN":                 reasonSampleRate,
		"a:1|c|@0.5:2|c|@-1":         reasonSampleRate,
		"a:1|c|#t:v|@NaN":            reasonSampleRate,
		"a:1|ms|@0.0001":             "",
		"a:1|ms|@0.00001":            reasonTooManyEvents,
		"a:1|c|@0.00001":             "", // a counter is divided, not repeated
		"a:1:2:3:4:5:6:7|ms|@0.0001": reasonTooManyEvents,
		"a:1|ms|@0.001" + strings.Repeat(":1|ms|@0.0001", 7): reasonTooManyEvents,
		"no colon|@0.5":                  "",
		"a:1|ms|#env:prod:x,b:c|@0.0001": "",
	} {
		if got := sampleRateProblem(line); got != want {
			t.Errorf("sampleRateProblem(%q) = %q, want %q", line, got, want)
		}
	}
}

// A panic anywhere in a reader or a shard is recovered, counted and
// logged; the reader goes on and no lock is left held.
func TestRecoveredPanicKeepsIngesting(t *testing.T) {
	for _, proto := range []string{"udp", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			rec := &recorder{}
			h := pipelinetest.New(t, "statsd_receiver", udp+"listen_tcp = \"127.0.0.1:0\"\n", pipelinetest.WithLogger(slog.New(rec)))
			r := h.Component.(*Receiver)
			r.hooks.line = func(l string) {
				if strings.HasPrefix(l, "boom.reader") {
					panic("injected reader panic")
				}
			}
			r.hooks.apply = func(name string) {
				if name == "boom_shard" {
					panic("injected shard panic")
				}
			}
			h.Start()
			pipelinetest.Eventually(t, waitFor, r.running0, "receiver did not start")
			// A good metric in the same shard as boom_shard: if the shard's
			// lock leaked, it could not be applied.
			same := ""
			for i := 0; same == ""; i++ {
				if n := fmt.Sprintf("same_%d", i); r.shardOf(n) == r.shardOf("boom_shard") {
					same = n
				}
			}
			g := h.Gatherer()
			addr := r.addr(t, proto)
			send(t, proto, addr, "boom_shard:1|c\nboom.reader:1|c\n"+same+":1|c\nother:1|c")
			waitValue(t, h.Registry, "statsd_exporter_events_error_total", map[string]string{"reason": reasonPanic}, 2)
			waitValue(t, g, same, nil, 1)
			waitValue(t, g, "other", nil, 1)
			// Again, on the same readers and shard.
			send(t, proto, addr, "boom_shard:1|c\n"+same+":1|c")
			waitValue(t, h.Registry, "statsd_exporter_events_error_total", map[string]string{"reason": reasonPanic}, 3)
			waitValue(t, g, same, nil, 2)
			if v := value(t, g, "boom_shard", nil); v != -1 {
				t.Errorf("boom_shard = %v, want no series", v)
			}
			if hs := r.Health(); hs.State != pipeline.HealthHealthy {
				t.Errorf("health: %+v", hs)
			}
			rec.mu.Lock()
			logged := 0
			for _, x := range rec.records {
				if x.Level == slog.LevelError && strings.Contains(x.Message, "panic") {
					logged++
				}
			}
			rec.mu.Unlock()
			if logged == 0 {
				t.Error("the recovered panic was not logged")
			}
			// Every shard's lock is free once the readers are stopped.
			if err := h.Stop(); err != nil {
				t.Fatal(err)
			}
			for i, s := range r.shards {
				if !s.mu.TryLock() {
					t.Fatalf("shard %d's lock is held after Stop", i)
				}
				s.mu.Unlock()
			}
		})
	}
}

// The watchdog: a reader stuck with work in hand turns the component
// unhealthy, naming the reader; it is healthy again once the reader moves.
func TestWatchdogReportsStalledReader(t *testing.T) {
	h := pipelinetest.New(t, "statsd_receiver", udp)
	r := h.Component.(*Receiver)
	r.stallAfter = 0 // any stall at all: the test waits for states, not for a time
	release := make(chan struct{})
	var once sync.Once
	r.hooks.apply = func(name string) {
		if name == "stall" {
			once.Do(func() { <-release })
		}
	}
	h.Start()
	pipelinetest.Eventually(t, waitFor, r.running0, "receiver did not start")
	pipelinetest.Eventually(t, waitFor, func() bool { return r.Health().State == pipeline.HealthHealthy },
		"unhealthy before the stall: %+v", r.Health())
	send(t, "udp", r.addr(t, "udp"), "stall:1|c")
	pipelinetest.Eventually(t, waitFor, func() bool {
		hs := r.Health()
		return hs.State == pipeline.HealthUnhealthy && strings.Contains(hs.Message, "reader") && strings.Contains(hs.Message, "no progress")
	}, "health did not turn unhealthy while a reader was stuck: %+v", r.Health())
	close(release)
	waitValue(t, h.Gatherer(), "stall", nil, 1)
	pipelinetest.Eventually(t, waitFor, func() bool { return r.Health().State == pipeline.HealthHealthy },
		"health did not recover: %+v", r.Health())
}

// Found by FuzzIngestLine: a counter foo_count next to a histogram or
// summary foo (in either order, or two observers foo and foo_count) made
// every gather fail ("collides with previously collected histogram"),
// which upstream's registry does not check. The second one is now a
// counted conflict and the scrape keeps working.
func TestSuffixCollisionsAreConflicts(t *testing.T) {
	h, r := startReceiver(t, udp+"mapping_defaults {\n  observer_type = \"histogram\"\n}\n")
	g := h.Gatherer()
	send(t, "udp", r.addr(t, "udp"),
		"a:1|ms\na_count:1|c\n"+ // observer first
			"b_sum:1|g\nb:1|ms\n"+ // observer second
			"c:1|ms\nc_bucket:1|ms\n"+ // two observers
			"d:1|ms\nd_count_sum:1|c\n"+ // d_count_sum routes with d and d_count
			"d_count:1|ms\n"+
			"ok:1|c")
	waitValue(t, g, "ok", nil, 1)
	for _, c := range []struct{ typ, name string }{{"counter", "a_count"}, {"observer", "b"}, {"observer", "c_bucket"}, {"observer", "d_count"}} {
		waitValue(t, h.Registry, "statsd_exporter_events_conflict_total", map[string]string{"type": c.typ, "metric_name": c.name}, 1)
	}
	if _, err := g.Gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}
	waitValue(t, g, "a", nil, 1)
	waitValue(t, g, "b_sum", nil, 1)
	waitValue(t, g, "d_count_sum", nil, 1)
}
