package statsd

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/statsd_exporter/pkg/event"
	"github.com/prometheus/statsd_exporter/pkg/exporter"
	"github.com/prometheus/statsd_exporter/pkg/line"
	"github.com/prometheus/statsd_exporter/pkg/mapper"
	"github.com/prometheus/statsd_exporter/pkg/mappercache/lru"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

func memNow() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

const memN = 100000

func seriesLine(i int) string {
	return "bench.series_" + strconv.Itoa(i%100) + ":1|c|#id:" + strconv.Itoa(i/100)
}

func report(t *testing.T, name string, a, b runtime.MemStats) {
	t.Logf("%s: HeapAlloc +%d (%.0f B/series) HeapInuse +%d HeapSys %d HeapIdle %d Sys %d Mallocs +%d TotalAlloc +%d NumGC %d",
		name, b.HeapAlloc-a.HeapAlloc, float64(b.HeapAlloc-a.HeapAlloc)/memN, b.HeapInuse-a.HeapInuse, b.HeapSys, b.HeapIdle, b.Sys, b.Mallocs-a.Mallocs, b.TotalAlloc-a.TotalAlloc, b.NumGC-a.NumGC)
}


func TestZZMemReceiver(t *testing.T) {
	h := pipelinetestNew(t)
	r := h
	r.mu.Lock()
	r.startShards()
	r.mu.Unlock()
	defer func() { r.mu.Lock(); r.stopShards(); r.mu.Unlock() }()
	p := r.newProcessor()
	for i := range 2000 {
		p.packet([]byte(gunicornPackets[i%len(gunicornPackets)]))
	}
	p.flush()
	waitEventsT(t, r, 2000)
	a := memNow()
	for i := range memN {
		p.packet([]byte(seriesLine(i)))
		if i%64 == 63 {
			p.flush()
		}
	}
	p.flush()
	waitEventsT(t, r, 2000+memN)
	b := memNow()
	report(t, "receiver", a, b)
	if f := os.Getenv("MEMPROF"); f != "" {
		w, _ := os.Create(f)
		pprof.Lookup("heap").WriteTo(w, 0)
		w.Close()
	}
	fams, _ := r.exported.Gather()
	c := memNow()
	report(t, "receiver+gather", a, c)
	runtime.KeepAlive(fams)
}

func TestZZMemUpstream(t *testing.T) {
	m := &mapper.MetricMapper{}
	if err := m.InitFromFile(examplesDir + "/gunicorn-mapping.yml"); err != nil {
		t.Fatal(err)
	}
	self := prometheus.NewRegistry()
	c, _ := lru.NewMetricMapperLRUCache(self, 1000)
	m.UseCache(c)
	reg := prometheus.NewRegistry()
	sm, err := newSelfMetrics(self)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	exp := exporter.NewExporter(reg, m, logger, sm.eventsActions, sm.eventsUnmapped, sm.errorEventStats, sm.eventStats, sm.conflictingEventStats, sm.metricsCount)
	p := line.NewParser()
	p.EnableDogstatsdParsing()
	p.EnableInfluxdbParsing()
	p.EnableLibratoParsing()
	p.EnableSignalFXParsing()
	ch := make(chan event.Events, 1000)
	done := make(chan struct{})
	go func() { exp.Listen(ch); close(done) }()
	send := func(n int, f func(int) string) {
		var batch event.Events
		for i := range n {
			batch = append(batch, p.LineToEvents(f(i), *sm.sampleErrors, sm.samplesReceived, sm.tagErrors, sm.tagsReceived, logger)...)
			if len(batch) >= 1000 {
				ch <- batch
				batch = nil
			}
		}
		ch <- batch
	}
	send(2000, func(i int) string { return gunicornPackets[i%len(gunicornPackets)] })
	for len(ch) > 0 {
		runtime.Gosched()
	}
	a := memNow()
	send(memN, seriesLine)
	close(ch)
	<-done
	b := memNow()
	report(t, "upstream", a, b)
	runtime.KeepAlive(exp)
	runtime.KeepAlive(reg)
	fmt.Sprint()
}

func pipelinetestNew(t *testing.T) *Receiver {
	h := pipelinetest.New(t, "statsd_receiver", "listen_udp = \"127.0.0.1:0\"\nmapping_file = \"gunicorn-mapping.yml\"\nmax_series = 0\n",
		pipelinetest.WithConfigDir(examplesDir))
	return h.Component.(*Receiver)
}

func waitEventsT(t *testing.T, r *Receiver, n float64) {
	for r.eventsDone() < n {
		runtime.Gosched()
	}
}
