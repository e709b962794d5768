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

	"github.com/sluicehq/sluice/internal/faultfs"
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

// BenchmarkScrapeDuringSlowGather scrapes, through a real metrics_sink
// (HTTP handler, text format), a cache whose input's Gather takes 5s, back
// to back, so that a Gather is in flight during (almost) every scrape
// ("during-gather" is the share of scrapes that ran during one). Each
// iteration also scrapes an idle cache over the same series, interleaved,
// as the baseline: the cost of encoding alone on this machine, at this
// moment. Reports p50 and p99 of both, in ms, and the p99 of the cache's
// Gather alone during the slow Gather (gather-p99-us).
func BenchmarkScrapeDuringSlowGather(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("series=%d", n), func(b *testing.B) {
			reg := registryWith(n)
			in := &slowInput{g: reg, delay: 5 * time.Second, stop: make(chan struct{})}
			defer close(in.stop)
			mux := pipelinetest.NewMux()
			slow := pipelinetest.New(b, "cache", `
  input            = test.in
  refresh_interval = "100ms"
  refresh_timeout  = "30s"
`, pipelinetest.WithGatherer("in", in), pipelinetest.WithID("slow"))
			idle := pipelinetest.New(b, "cache", `
  input            = test.in
  refresh_interval = "5m"
`, pipelinetest.WithGatherer("in", reg), pipelinetest.WithID("idle"))
			slow.Start()
			idle.Start()
			for name, c := range map[string]*pipelinetest.Harness{"slow": slow, "idle": idle} {
				s := pipelinetest.New(b, "metrics_sink", "inputs = [test.c]\npath = \"/"+name+"\"",
					pipelinetest.WithGatherer("c", c.Gatherer()), pipelinetest.WithMounter(mux), pipelinetest.WithID(name))
				s.Start()
			}
			pipelinetest.Eventually(b, 30*time.Second, func() bool { return in.inflight.Load() == 1 }, "the slow gather started")
			pipelinetest.Eventually(b, 30*time.Second, func() bool { f, _ := idle.Gatherer().Gather(); return len(f) == 1 }, "idle cache filled")
			scrape := func(path string) time.Duration {
				rec := httptest.NewRecorder()
				t0 := time.Now()
				mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				d := time.Since(t0)
				if rec.Code != 200 || rec.Body.Len() == 0 {
					b.Fatalf("scrape %s: %d, %d bytes", path, rec.Code, rec.Body.Len())
				}
				return d
			}
			var slowLat, idleLat, gatherLat []time.Duration
			during := 0
			cg := slow.Gatherer()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if i%2 == 0 {
					slowLat = append(slowLat, scrape("/slow"))
					idleLat = append(idleLat, scrape("/idle"))
				} else {
					idleLat = append(idleLat, scrape("/idle"))
					slowLat = append(slowLat, scrape("/slow"))
				}
				t0 := time.Now()
				if _, err := cg.Gather(); err != nil {
					b.Fatal(err)
				}
				gatherLat = append(gatherLat, time.Since(t0))
				if in.inflight.Load() == 1 {
					during++
				}
			}
			b.StopTimer()
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(quantile(slowLat, 0.5)), "p50-ms")
			b.ReportMetric(ms(quantile(slowLat, 0.99)), "p99-ms")
			b.ReportMetric(ms(quantile(idleLat, 0.5)), "idle-p50-ms")
			b.ReportMetric(ms(quantile(idleLat, 0.99)), "idle-p99-ms")
			b.ReportMetric(float64(quantile(gatherLat, 0.99).Nanoseconds())/1000, "gather-p99-us")
			b.ReportMetric(float64(during)/float64(b.N), "during-gather")
		})
	}
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*q)]
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
		p := persister{fs: faultfs.OS{}, dir: b.TempDir()}
		b.ReportAllocs()
		for range b.N {
			if err := p.write(prev, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
