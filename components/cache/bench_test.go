package cache

import (
	"fmt"
	"io"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// registryWith returns a registry of n gauge series (two labels each).
func registryWith(n int) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bench_rows", Help: "Rows."}, []string{"table", "shard"})
	reg.MustRegister(g)
	for i := range n {
		g.WithLabelValues("t"+strconv.Itoa(i/100), strconv.Itoa(i%100)).Set(float64(i))
	}
	return reg
}

// slowInput answers its first Gather at once and every later one after
// delay: a database scan that takes that long.
type slowInput struct {
	g        prometheus.Gatherer
	delay    time.Duration
	calls    atomic.Int64
	inflight atomic.Int64
	stop     chan struct{}
}

func (s *slowInput) Gather() ([]*dto.MetricFamily, error) {
	if s.calls.Add(1) > 1 {
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		select {
		case <-time.After(s.delay):
		case <-s.stop:
		}
	}
	return s.g.Gather()
}

// BenchmarkScrapeDuringSlowGather scrapes a cache through a real
// metrics_sink (HTTP handler, text format) while the input's Gather takes
// 5s, back to back, and reports the scrape latency's p50 and p99 and the
// share of scrapes that ran while a gather was in flight (1 = all).
func BenchmarkScrapeDuringSlowGather(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("series=%d", n), func(b *testing.B) {
			in := &slowInput{g: registryWith(n), delay: 5 * time.Second, stop: make(chan struct{})}
			defer close(in.stop)
			h := pipelinetest.New(b, "cache", `
  input            = test.in
  refresh_interval = "100ms"
  refresh_timeout  = "30s"
`, pipelinetest.WithGatherer("in", in))
			h.Start()
			mux := pipelinetest.NewMux()
			s := pipelinetest.New(b, "metrics_sink", "inputs = [test.c]\npath = \"/m\"",
				pipelinetest.WithGatherer("c", h.Gatherer()), pipelinetest.WithMounter(mux))
			s.Start()
			pipelinetest.Eventually(b, 30*time.Second, func() bool { return in.inflight.Load() == 1 }, "the slow gather started")
			lat := make([]time.Duration, 0, b.N)
			during := 0
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				req := httptest.NewRequest("GET", "/m", nil)
				rec := httptest.NewRecorder()
				t0 := time.Now()
				mux.ServeHTTP(rec, req)
				lat = append(lat, time.Since(t0))
				if in.inflight.Load() == 1 {
					during++
				}
				if rec.Code != 200 || rec.Body.Len() == 0 {
					b.Fatalf("scrape: %d, %d bytes", rec.Code, rec.Body.Len())
				}
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(during)/float64(b.N), "during-gather")
		})
	}
}

// BenchmarkScrape compares one scrape (Gather and text encoding) of the
// bare input, a registry, with one through the cache over that input, for
// 10k and 100k series. "interleaved" scrapes both in every iteration and
// reports each one's ms per scrape and their ratio (cache/input), so that
// both sides see the same machine load; "input" and "cache" report bytes
// and allocations of each alone.
func BenchmarkScrape(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		reg := registryWith(n)
		h := pipelinetest.New(b, "cache", `
  input            = test.in
  refresh_interval = "5m"
`, pipelinetest.WithGatherer("in", reg))
		h.Start()
		cached := h.Gatherer()
		pipelinetest.Eventually(b, time.Minute, func() bool {
			f, _ := cached.Gather()
			return len(f) == 1 && len(f[0].Metric) == n
		}, "first refresh")
		b.Run(fmt.Sprintf("series=%d/interleaved", n), func(b *testing.B) {
			var tin, tcache time.Duration
			for i := range b.N {
				// Alternate which side goes first.
				first, second := prometheus.Gatherer(reg), cached
				if i%2 == 1 {
					first, second = cached, reg
				}
				d1, d2 := timeScrape(b, first), timeScrape(b, second)
				if i%2 == 1 {
					d1, d2 = d2, d1
				}
				tin += d1
				tcache += d2
			}
			b.ReportMetric(float64(tin.Microseconds())/1000/float64(b.N), "input-ms")
			b.ReportMetric(float64(tcache.Microseconds())/1000/float64(b.N), "cache-ms")
			b.ReportMetric(float64(tcache)/float64(tin), "ratio")
		})
		for _, tc := range []struct {
			name string
			g    prometheus.Gatherer
		}{{"input", reg}, {"cache", cached}} {
			b.Run(fmt.Sprintf("series=%d/%s", n, tc.name), func(b *testing.B) {
				b.ReportAllocs()
				for range b.N {
					scrape(b, tc.g)
				}
			})
		}
	}
}

func timeScrape(b *testing.B, g prometheus.Gatherer) time.Duration {
	t0 := time.Now()
	scrape(b, g)
	return time.Since(t0)
}

// scrape gathers g and encodes it in the text format, as a sink does.
func scrape(b *testing.B, g prometheus.Gatherer) {
	fams, err := g.Gather()
	if err != nil {
		b.Fatal(err)
	}
	enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range fams {
		if err := enc.Encode(mf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefresh measures a refresh's merge and the snapshot file write
// for 100k series: the background cost that buys cheap scrapes.
func BenchmarkRefresh(b *testing.B) {
	const n = 100_000
	fams, _ := registryWith(n).Gather()
	now := time.Unix(1_800_000_000, 0)
	prev, _ := merge(&snapshot{}, fams, now, time.Hour)
	b.Run("merge", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			merge(prev, fams, now, time.Hour)
		}
	})
	b.Run("persist", func(b *testing.B) {
		p := persister{dir: b.TempDir()}
		b.ReportAllocs()
		for range b.N {
			if err := p.write(prev, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
