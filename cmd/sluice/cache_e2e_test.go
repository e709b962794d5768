package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/testing/realpart"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// startAgentWithStorage starts sluice on config with the given storage
// directory and HTTP address, and waits until it is ready.
func startAgentWithStorage(t *testing.T, dir, addr, storage, config string) *agent {
	t.Helper()
	return launch(t, config, launchOpts{addr: addr, config: filepath.Join(dir, "sluice.hcl"), storage: storage}).waitReady()
}

// statsdCacheConfig: a statsd_receiver on udp, a persisted cache of it
// refreshed every refresh, and the default sink serving the cache.
func statsdCacheConfig(udp, refresh string) string {
	return fmt.Sprintf(`
statsd_receiver "app" {
  listen_udp = %q
  listen_tcp = ""
}

cache "app" {
  input            = statsd_receiver.app.metrics
  refresh_interval = %q
  max_staleness    = "10m"
  persist          = true
}

metrics_sink "default" {
  inputs = [cache.app.metrics]
}
`, udp, refresh)
}

// Issue 11: a cache with persist survives kill -9. The first agent
// receives statsd gauges and persists them; it is killed with SIGKILL
// between two refreshes; a second agent on the same storage path, whose
// statsd receiver has received nothing, serves the values at its first
// scrape.
func TestCacheSurvivesKill9(t *testing.T) {
	realpart.SkipShortSlow(t, "kills the agent with SIGKILL and restarts it on the persisted cache")
	dir, storage := t.TempDir(), filepath.Join(t.TempDir(), "data")
	udp := freeUDPAddr(t)
	config := statsdCacheConfig(udp, "500ms")
	addr := pipelinetest.FreeTCPAddr(t)
	a := startAgentWithStorage(t, dir, addr, storage, config)
	conn, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 20
	want := make([]string, 0, n)
	for i := range n {
		// One line per series, with its final value: a series exists in
		// the snapshot only with that value.
		if _, err := fmt.Fprintf(conn, "e2e_cache_gauge_%d:%d|g\n", i, 1000+i); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("e2e_cache_gauge_%d %d\n", i, 1000+i))
	}
	a.scrapeHas("/metrics/default", want, nil)
	a.waitFor("the snapshot persisted", func() bool {
		_, body := a.get("/metrics")
		return metricValue(t, body, `sluice_cache_persisted_series{component_id="cache.app"}`) >= n
	})
	if err := a.cmd.Process.Kill(); err != nil { // SIGKILL: nothing runs at exit
		t.Fatal(err)
	}
	a.exited <- <-a.exited

	b := startAgentWithStorage(t, dir, addr, storage, config)
	var body string
	b.waitFor("the first scrape", func() bool {
		var code int
		code, body = b.get("/metrics/default")
		return code == 200
	})
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Fatalf("the first scrape after kill -9 lacks %q:\n%s", strings.TrimSpace(w), body)
		}
	}
	_, self := b.get("/metrics")
	if v := metricValue(t, self, `sluice_cache_restored{component_id="cache.app"}`); v != 1 {
		t.Errorf("sluice_cache_restored = %v, want 1", v)
	}
	if v := metricValue(t, self, `sluice_cache_persist_errors_total{component_id="cache.app",op="restore"}`); v != 0 {
		t.Errorf("restore errors = %v", v)
	}
	// Refreshes of the empty receiver keep them (counted stale).
	b.waitFor("a refresh of the empty input", func() bool {
		_, self := b.get("/metrics")
		return metricValue(t, self, `sluice_cache_stale_series{component_id="cache.app"}`) == n
	})
	b.scrapeHas("/metrics/default", want, nil)
}
