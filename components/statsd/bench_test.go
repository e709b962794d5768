package statsd

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/statsd_exporter/pkg/event"
	"github.com/prometheus/statsd_exporter/pkg/exporter"
	"github.com/prometheus/statsd_exporter/pkg/line"
	"github.com/prometheus/statsd_exporter/pkg/mapper"
	"github.com/prometheus/statsd_exporter/pkg/mappercache/lru"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// The hot path, without sockets: datagram -> lines -> parser -> mapper ->
// shard -> upstream registry. Run with
//
//	go test -run '^$' -bench . -benchmem ./components/statsd/

// gunicornPackets is what one gunicorn request produces, plus a gauge and
// a log counter now and then, with and without DogStatsD tags.
var gunicornPackets = []string{
	"gunicorn.request.duration:12.5|ms",
	"gunicorn.requests:1|c|@1.0",
	"gunicorn.request.status.200:1|c|@1.0",
	"web.gunicorn.request.duration:101.2|ms|#env:prod,region:eu",
	"web.gunicorn.requests:1|c|@1.0|#env:prod,region:eu",
	"web.gunicorn.request.status.404:1|c|@1.0|#env:prod,region:eu",
	"gunicorn.workers:4|g",
	"gunicorn.log.warning:1|c|@1.0",
}

func benchReceiver(b *testing.B) *Receiver {
	h := pipelinetest.New(b, "statsd_receiver", "listen_udp = \"127.0.0.1:0\"\nmapping_file = \"gunicorn-mapping.yml\"\nmax_series = 1000000\n",
		pipelinetest.WithConfigDir(examplesDir))
	r := h.Component.(*Receiver)
	r.mu.Lock()
	r.startShards()
	r.mu.Unlock()
	b.Cleanup(func() {
		r.mu.Lock()
		r.stopShards()
		r.mu.Unlock()
	})
	return r
}

func (r *Receiver) eventsDone() float64 {
	return testutil.ToFloat64(r.m.evCounter) + testutil.ToFloat64(r.m.evGauge) + testutil.ToFloat64(r.m.evObserver)
}

func waitEvents(b *testing.B, r *Receiver, n float64) {
	deadline := time.Now().Add(time.Minute)
	for r.eventsDone() < n {
		if time.Now().After(deadline) {
			b.Fatalf("%v of %v events processed", r.eventsDone(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkIngest measures one line per datagram (gunicorn's way), with a
// flush per datagram (light traffic) or per 64 (a drained socket under
// load), through the fast path (fastpath.go) and, for comparison, the
// full path alone. ns/op is per line; allocations include the shards'.
func BenchmarkIngest(b *testing.B) {
	for _, c := range []struct {
		every int
		full  bool
	}{{1, false}, {64, false}, {1, true}, {64, true}} {
		name := fmt.Sprintf("gunicorn/flush_every_%d", c.every)
		if c.full {
			name = fmt.Sprintf("gunicorn_full_path/flush_every_%d", c.every)
		}
		every := c.every
		b.Run(name, func(b *testing.B) {
			r := benchReceiver(b)
			r.hooks.fullPathOnly = c.full
			pkts := make([][]byte, len(gunicornPackets))
			for i, p := range gunicornPackets {
				pkts[i] = []byte(p)
			}
			p := r.newProcessor()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				p.packet(pkts[i%len(pkts)])
				if i%every == every-1 {
					p.flush()
				}
			}
			p.flush()
			waitEvents(b, r, float64(b.N))
		})
	}
	b.Run("distinct_series", func(b *testing.B) {
		r := benchReceiver(b)
		pkts := make([][]byte, 100000)
		for i := range pkts {
			pkts[i] = fmt.Appendf(nil, "app.metric_%d:1|c|#instance:i%d", i%1000, i/1000)
		}
		p := r.newProcessor()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			p.packet(pkts[i%len(pkts)])
			if i%64 == 63 {
				p.flush()
			}
		}
		p.flush()
		waitEvents(b, r, float64(b.N))
	})
}

// BenchmarkUpstreamExporter is the same gunicorn traffic through upstream's
// parser and exporter loop (Exporter.Listen, one goroutine), for
// comparison.
func BenchmarkUpstreamExporter(b *testing.B) {
	m := &mapper.MetricMapper{}
	if err := m.InitFromFile(examplesDir + "/gunicorn-mapping.yml"); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	self := prometheus.NewRegistry()
	sm, err := newSelfMetrics(self)
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	exp := exporter.NewExporter(reg, m, logger, sm.eventsActions, sm.eventsUnmapped, sm.errorEventStats, sm.eventStats, sm.conflictingEventStats, sm.metricsCount)
	p := line.NewParser()
	p.EnableDogstatsdParsing()
	ch := make(chan event.Events, 1000)
	done := make(chan struct{})
	go func() { exp.Listen(ch); close(done) }()
	b.ReportAllocs()
	b.ResetTimer()
	var batch event.Events
	for i := range b.N {
		batch = append(batch, p.LineToEvents(gunicornPackets[i%len(gunicornPackets)], *sm.sampleErrors, sm.samplesReceived, sm.tagErrors, sm.tagsReceived, logger)...)
		if len(batch) >= 1000 {
			ch <- batch
			batch = nil
		}
	}
	ch <- batch
	close(ch)
	<-done
}

// BenchmarkSeriesMemory reports the live heap that 100k distinct series
// (bench.series_<0..99> x #id:<0..999>, as bench/statsd sends) add, after
// a forced GC: through the receiver's shards, and through upstream's
// exporter loop with its LRU mapper cache, as statsd_exporter runs it. Run
// it on its own, with -benchtime=1x:
//
//	go test -run '^$' -bench SeriesMemory -benchtime=1x ./components/statsd/
func BenchmarkSeriesMemory(b *testing.B) {
	const n = 100000
	series := func(i int) string {
		return "bench.series_" + strconv.Itoa(i%100) + ":1|c|#id:" + strconv.Itoa(i/100)
	}
	b.Run("receiver", func(b *testing.B) {
		for range b.N {
			r := benchReceiver(b)
			p := r.newProcessor()
			for i := range 2000 {
				p.packet([]byte(gunicornPackets[i%len(gunicornPackets)]))
			}
			p.flush()
			waitEvents(b, r, 2000)
			before := liveHeap()
			for i := range n {
				p.packet([]byte(series(i)))
				if i%64 == 63 {
					p.flush()
				}
			}
			p.flush()
			waitEvents(b, r, 2000+n)
			b.ReportMetric(float64(liveHeap()-before)/n, "B/series")
			runtime.KeepAlive(r)
		}
	})
	b.Run("upstream", func(b *testing.B) {
		for range b.N {
			m := &mapper.MetricMapper{}
			if err := m.InitFromFile(examplesDir + "/gunicorn-mapping.yml"); err != nil {
				b.Fatal(err)
			}
			self := prometheus.NewRegistry()
			c, err := lru.NewMetricMapperLRUCache(self, DefaultCacheSize)
			if err != nil {
				b.Fatal(err)
			}
			m.UseCache(c)
			sm, err := newSelfMetrics(self)
			if err != nil {
				b.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			logger := slog.New(slog.DiscardHandler)
			exp := exporter.NewExporter(reg, m, logger, sm.eventsActions, sm.eventsUnmapped, sm.errorEventStats, sm.eventStats, sm.conflictingEventStats, sm.metricsCount)
			p := line.NewParser()
			p.EnableDogstatsdParsing()
			ch := make(chan event.Events, 1000)
			done := make(chan struct{})
			go func() { exp.Listen(ch); close(done) }()
			send := func(count int, f func(int) string) {
				var batch event.Events
				for i := range count {
					batch = append(batch, p.LineToEvents(f(i), *sm.sampleErrors, sm.samplesReceived, sm.tagErrors, sm.tagsReceived, logger)...)
					if len(batch) >= 1000 {
						ch <- batch
						batch = nil
					}
				}
				ch <- batch
			}
			send(2000, func(i int) string { return gunicornPackets[i%len(gunicornPackets)] })
			for testutil.ToFloat64(sm.evCounter)+testutil.ToFloat64(sm.evGauge)+testutil.ToFloat64(sm.evObserver) < 2000 {
				time.Sleep(time.Millisecond)
			}
			before := liveHeap()
			send(n, series)
			close(ch)
			<-done
			b.ReportMetric(float64(liveHeap()-before)/n, "B/series")
			runtime.KeepAlive(exp)
			runtime.KeepAlive(reg)
		}
	})
}

// liveHeap is the heap in use after a full GC.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkGather100k is one gather of 100k series (bench.series_<0..99> x
// #id:<0..999>, as bench/statsd sends), encoded in the text format as a
// scrape would: from the receiver's store, and from upstream's registry
// (client_golang's vectors, as statsd_exporter serves them); receiver-text
// is the receiver's encoded.Gatherer path, what metrics_sink serves a
// text-format scrape from (the text encoded straight from the store, no
// dto values). Run with
//
//	go test -run '^$' -bench Gather100k -benchmem -count 6 ./components/statsd/
func BenchmarkGather100k(b *testing.B) {
	const n = 100000
	series := func(i int) string {
		return "bench.series_" + strconv.Itoa(i%100) + ":1|c|#id:" + strconv.Itoa(i/100)
	}
	encode := func(b *testing.B, g prometheus.Gatherer) {
		mfs, err := g.Gather()
		if err != nil {
			b.Fatal(err)
		}
		enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain))
		got := 0
		for _, mf := range mfs {
			got += len(mf.Metric)
			if err := enc.Encode(mf); err != nil {
				b.Fatal(err)
			}
		}
		if got < n {
			b.Fatalf("gathered %d series, want %d", got, n)
		}
	}
	loaded := func(b *testing.B) *Receiver {
		r := benchReceiver(b)
		p := r.newProcessor()
		for i := range n {
			p.packet([]byte(series(i)))
			if i%64 == 63 {
				p.flush()
			}
		}
		p.flush()
		waitEvents(b, r, n)
		return r
	}
	b.Run("receiver", func(b *testing.B) {
		r := loaded(b)
		b.ReportAllocs()
		for b.Loop() {
			encode(b, r.series())
		}
	})
	b.Run("receiver-text", func(b *testing.B) {
		r := loaded(b)
		g := r.series()
		fams, err := g.GatherText()
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		for _, f := range fams {
			got += bytes.Count(f.Text, []byte("\nbench_series_"))
		}
		if got < n {
			b.Fatalf("encoded %d series, want %d", got, n)
		}
		b.ReportAllocs()
		for b.Loop() {
			fams, err := g.GatherText()
			if err != nil {
				b.Fatal(err)
			}
			for _, f := range fams {
				if _, err := io.Discard.Write(f.Text); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("upstream", func(b *testing.B) {
		yaml, err := os.ReadFile(examplesDir + "/gunicorn-mapping.yml")
		if err != nil {
			b.Fatal(err)
		}
		up := newUpstream(b, string(yaml))
		lines := make([]string, n)
		for i := range n {
			lines[i] = series(i)
		}
		up.send(lines)
		reg := up.prom
		b.ReportAllocs()
		for b.Loop() {
			encode(b, reg)
		}
	})
}
