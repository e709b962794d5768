package cache

import (
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

// Scrapes are answered from the snapshot: the input is gathered by the
// refresh loop only, and every scrape shares the same families (no copy).
func TestScrapesNeverCallTheInput(t *testing.T) {
	in := newInput()
	in.gaugeVec("orders", "status").WithLabelValues("paid").Set(3)
	h, _ := harness(t, `
  input            = test.in
  refresh_interval = "5m"
`, in, nil)
	h.Start()
	g := h.Gatherer()
	pipelinetest.Eventually(t, wait, func() bool { return served(t, g)["orders,status=paid"] == 3 }, "first refresh")
	calls := in.calls.Load()
	first, _ := g.Gather()
	for range 100 {
		fams, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		if &fams[0] != &first[0] {
			t.Fatal("a scrape got a different slice: the snapshot was copied or rebuilt")
		}
	}
	if got := in.calls.Load(); got != calls || got != 1 {
		t.Errorf("input gathered %d times, want 1 (the refresh at start); scrapes must not call it", got)
	}
	if got := metric(t, h.Registry, "sluice_cache_series"); got != 1 {
		t.Errorf("sluice_cache_series = %v, want 1", got)
	}
}

// A failing input changes nothing but the failure count and health; its
// recovery is served at the next refresh.
func TestInputFailureThenRecovery(t *testing.T) {
	in := newInput()
	orders := in.gaugeVec("orders", "status")
	orders.WithLabelValues("paid").Set(3)
	orders.WithLabelValues("open").Set(5)
	h, c := harness(t, `
  input            = test.in
  refresh_interval = "100ms"
  jitter           = "0%"
`, in, nil)
	h.Start()
	g := h.Gatherer()
	pipelinetest.Eventually(t, wait, func() bool { return len(served(t, g)) == 2 }, "first refresh")
	before, _ := g.Gather()

	in.setErr(errDown)
	pipelinetest.Eventually(t, wait, func() bool {
		return metric(t, h.Registry, "sluice_cache_refresh_failures_total", "reason", "error") >= 3
	}, "failures counted")
	after, _ := g.Gather()
	if &before[0] != &after[0] {
		t.Error("a failed refresh replaced the snapshot")
	}
	if got := served(t, g); got["orders,status=paid"] != 3 || got["orders,status=open"] != 5 {
		t.Errorf("during the outage the cache serves %v, want the last values", got)
	}
	if hl := c.Health(); hl.State != pipeline.HealthUnhealthy || !strings.Contains(hl.Message, errDown.Error()) {
		t.Errorf("health during the outage = %+v", hl)
	}
	if got := metric(t, h.Registry, "sluice_cache_stale_series"); got != 0 {
		t.Errorf("stale series = %v: nothing is missing from the last successful refresh", got)
	}

	orders.WithLabelValues("paid").Set(4)
	in.setErr(nil)
	pipelinetest.Eventually(t, wait, func() bool { return served(t, g)["orders,status=paid"] == 4 }, "recovery")
	pipelinetest.Eventually(t, wait, func() bool { return c.Health().State == pipeline.HealthHealthy }, "healthy again")
}

// A source that comes back with only pg_up 0 (its database is down) does
// not wipe the series it served: they stay, counted as stale, in their
// place.
func TestEmptyRefreshKeepsSeriesUntilMaxStaleness(t *testing.T) {
	in := newInput()
	up := in.gaugeVec("pg_up")
	up.WithLabelValues().Set(1)
	orders := in.gaugeVec("shop_orders", "status")
	for i, s := range []string{"a", "b", "c"} {
		orders.WithLabelValues(s).Set(float64(i + 1))
	}
	clk := newClock()
	h, _ := harness(t, `
  input            = test.in
  refresh_interval = "100ms"
  max_staleness    = "10m"
  jitter           = "0%"
`, in, clk)
	h.Start()
	g := h.Gatherer()
	pipelinetest.Eventually(t, wait, func() bool { return len(served(t, g)) == 4 }, "first refresh")

	// Series b goes away on its own, then the database goes down.
	orders.DeleteLabelValues("b")
	clk.advance(time.Minute)
	pipelinetest.Eventually(t, wait, func() bool { return metric(t, h.Registry, "sluice_cache_stale_series") == 1 }, "b stale")
	fams, _ := g.Gather()
	if got := labelValues(fams, "shop_orders"); got != "a,b,c" {
		t.Errorf("order of shop_orders with b stale = %s, want a,b,c (b keeps its place)", got)
	}
	orders.Reset()
	up.WithLabelValues().Set(0)
	clk.advance(time.Minute)
	pipelinetest.Eventually(t, wait, func() bool { return served(t, g)["pg_up"] == 0 }, "pg_up 0 served")
	got := served(t, g)
	if got["shop_orders,status=a"] != 1 || got["shop_orders,status=b"] != 2 || got["shop_orders,status=c"] != 3 {
		t.Errorf("after an empty refresh the cache serves %v, want the last values of a, b and c", got)
	}
	if s := metric(t, h.Registry, "sluice_cache_stale_series"); s != 3 {
		t.Errorf("stale series = %v, want 3", s)
	}

	// b was last seen 9 minutes ago, a and c 8: b goes first.
	clk.advance(8*time.Minute + 30*time.Second)
	pipelinetest.Eventually(t, wait, func() bool { _, ok := served(t, g)["shop_orders,status=b"]; return !ok }, "b expired")
	if got := served(t, g); got["shop_orders,status=a"] != 1 || got["shop_orders,status=c"] != 3 {
		t.Errorf("a and c expired early: %v", got)
	}
	clk.advance(time.Minute)
	pipelinetest.Eventually(t, wait, func() bool { return len(served(t, g)) == 1 }, "a and c expired")
	if got := metric(t, h.Registry, "sluice_cache_expired_series_total"); got != 3 {
		t.Errorf("expired series = %v, want 3", got)
	}
	if got := metric(t, h.Registry, "sluice_cache_series"); got != 1 {
		t.Errorf("series = %v, want 1 (pg_up)", got)
	}
}

// Staleness expires series while the input keeps failing, too.
func TestStalenessExpiryWhileInputFails(t *testing.T) {
	in := newInput()
	in.gaugeVec("orders", "status").WithLabelValues("paid").Set(3)
	clk := newClock()
	h, _ := harness(t, `
  input            = test.in
  refresh_interval = "100ms"
  max_staleness    = "5m"
`, in, clk)
	h.Start()
	g := h.Gatherer()
	pipelinetest.Eventually(t, wait, func() bool { return len(served(t, g)) == 1 }, "first refresh")
	in.setErr(errDown)
	clk.advance(4 * time.Minute)
	pipelinetest.Eventually(t, wait, func() bool {
		return metric(t, h.Registry, "sluice_cache_refresh_failures_total", "reason", "error") >= 2
	}, "failures")
	if len(served(t, g)) != 1 {
		t.Fatal("a series within max_staleness was dropped")
	}
	if age := metric(t, h.Registry, "sluice_cache_age_seconds"); age < 240 {
		t.Errorf("age = %vs, want at least 240", age)
	}
	clk.advance(2 * time.Minute)
	pipelinetest.Eventually(t, wait, func() bool { return len(served(t, g)) == 0 }, "expiry during the outage")
}

// A Gather that hangs is abandoned at refresh_timeout and counted; while it
// has not returned no second one starts; the snapshot stays.
func TestHungInputIsAbandonedOnce(t *testing.T) {
	in := newInput()
	in.gaugeVec("orders", "status").WithLabelValues("paid").Set(3)
	h, _ := harness(t, `
  input            = test.in
  refresh_interval = "100ms"
  refresh_timeout  = "50ms"
`, in, nil)
	h.Start()
	g := h.Gatherer()
	pipelinetest.Eventually(t, wait, func() bool { return len(served(t, g)) == 1 }, "first refresh")
	release := in.hang()
	defer release()
	pipelinetest.Eventually(t, wait, func() bool {
		return metric(t, h.Registry, "sluice_cache_refresh_failures_total", "reason", "blocked") >= 5
	}, "blocked refreshes")
	if got := metric(t, h.Registry, "sluice_cache_refresh_failures_total", "reason", "timeout"); got != 1 {
		t.Errorf("timeouts = %v, want 1: one abandoned gather, the rest blocked", got)
	}
	if got := in.maxInflight.Load(); got != 1 {
		t.Errorf("%d gathers ran at once, want 1", got)
	}
	if got := metric(t, h.Registry, "sluice_cache_abandoned_gathers"); got != 1 {
		t.Errorf("abandoned gathers outstanding = %v, want 1", got)
	}
	if served(t, g)["orders,status=paid"] != 3 {
		t.Error("the snapshot was lost while the input hung")
	}
	release()
	in.gaugeVec("more", "x").WithLabelValues("y").Set(1)
	pipelinetest.Eventually(t, wait, func() bool { return len(served(t, g)) == 2 }, "refresh after the input returned")
	pipelinetest.Eventually(t, wait, func() bool { return metric(t, h.Registry, "sluice_cache_abandoned_gathers") == 0 }, "gauge back to 0")
}

// Reload: a new refresh_interval keeps the snapshot and refreshes nothing;
// a new input is refreshed at once.
func TestReloadKeepsSnapshot(t *testing.T) {
	a, b := newInput(), newInput()
	a.gaugeVec("from_a").WithLabelValues().Set(1)
	b.gaugeVec("from_b").WithLabelValues().Set(2)
	h := pipelinetest.New(t, "cache", `
  input            = test.a
  refresh_interval = "5m"
`, pipelinetest.WithGatherer("a", a), pipelinetest.WithGatherer("b", b))
	h.Start()
	g := h.Gatherer()
	pipelinetest.Eventually(t, wait, func() bool { return len(served(t, g)) == 1 }, "first refresh")
	before, _ := g.Gather()

	if err := h.Update(`
  input            = test.a
  refresh_interval = "6m"
`); err != nil {
		t.Fatal(err)
	}
	after, _ := g.Gather()
	if &before[0] != &after[0] || a.calls.Load() != 1 {
		t.Errorf("a new refresh_interval replaced the snapshot or refreshed (input calls %d)", a.calls.Load())
	}

	if err := h.Update(`
  input            = test.b
  refresh_interval = "6m"
`); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, wait, func() bool { return served(t, g)["from_b"] == 2 }, "the new input refreshed at once")
	// The old input's series are kept like any missing series: overlap.
	if got := served(t, g); got["from_a"] != 1 {
		t.Errorf("after switching inputs: %v, want from_a kept until max_staleness", got)
	}
	if g != h.Gatherer() {
		t.Error("the export changed identity")
	}
}

func TestBadArguments(t *testing.T) {
	in := newInput()
	for _, tc := range []struct{ body, want string }{
		{`refresh_interval = "1s"`, `"input" is required`},
		{"input = test.in\nrefresh_interval = \"10ms\"", "at least 100ms"},
		{"input = test.in\njitter = \"10\"", "percentage"},
		{"input = test.in\njitter = \"80%\"", "0% to 50%"},
		{"input = test.in\njitter = \"-1%\"", "0% to 50%"},
		{"input = test.in\nrefresh_interval = \"1m\"\nmax_staleness = \"30s\"", "shorter than refresh_interval"},
		{"input = test.in\npersist = \"yes\"", "bool"},
	} {
		_, diags := pipelinetest.Decode(t, "cache", tc.body, pipelinetest.WithGatherer("in", in))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.body, diags, tc.want)
		}
	}
	if _, diags := pipelinetest.Decode(t, "cache", `input = test.in`, pipelinetest.WithGatherer("in", in)); diags.HasErrors() {
		t.Errorf("defaults do not validate: %v", diags)
	}
}

func labelValues(fams []*dto.MetricFamily, name string) string {
	var out []string
	for _, mf := range fams {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			out = append(out, m.Label[0].GetValue())
		}
	}
	return strings.Join(out, ",")
}

// Issue 19 item 16: refresh_interval alone is a valid config: an unset
// refresh_timeout is min(10s, refresh_interval), as Prometheus does with
// scrape_timeout, and the refresh loop gets it; an explicit one is kept.
// The reference docs say what the default is.
func TestRefreshTimeoutDefaultAdaptsToInterval(t *testing.T) {
	in := newInput()
	for _, tc := range []struct {
		body string
		want time.Duration
	}{
		{"input = test.in\nrefresh_interval = \"1s\"", time.Second},
		{"input = test.in\nrefresh_interval = \"200ms\"\nmax_staleness = \"1m\"", 200 * time.Millisecond},
		{"input = test.in", defaultRefreshTimeout},
		{"input = test.in\nrefresh_timeout = \"0s\"", defaultRefreshTimeout}, // 0 is unset
		{"input = test.in\nrefresh_interval = \"1m\"", defaultRefreshTimeout},
		{"input = test.in\nrefresh_interval = \"1s\"\nrefresh_timeout = \"3s\"", 3 * time.Second},
	} {
		args, diags := pipelinetest.Decode(t, "cache", tc.body, pipelinetest.WithGatherer("in", in))
		if diags.HasErrors() {
			t.Errorf("%q: refused: %v", tc.body, diags)
			continue
		}
		if got := newConfig(args.(Arguments), 0).timeout; got != tc.want {
			t.Errorf("%q: refresh timeout %v, want %v", tc.body, got, tc.want)
		}
	}
	ct, _ := pipeline.Lookup("cache")
	for _, a := range runtime.Describe(ct).Args {
		if a.Name == "refresh_timeout" && a.Default != "min(10s, refresh_interval)" {
			t.Errorf("documented default of refresh_timeout: %q, want min(10s, refresh_interval)", a.Default)
		}
	}
}
