// Package scrape benchmarks a scrape of 100k series through relabel into
// metrics_sink against serving the same registry directly with promhttp.
//
// Each iteration serves one direct scrape and one scrape of the variant,
// back to back, so both see the same machine load; the benchmark reports
// both times and their ratio:
//
//	go test ./bench/scrape -run '^$' -bench Scrape100k -benchtime 20x
package scrape

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	_ "github.com/sluicehq/sluice/components/cache"
	_ "github.com/sluicehq/sluice/components/relabel"
	"github.com/sluicehq/sluice/components/sink"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

const (
	families     = 10
	seriesPerFam = 10_000
)

// registry holds 100k series: 5 counter and 5 gauge families of 10k
// series, each with three labels.
func registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	for f := 0; f < families; f++ {
		names := []string{"instance", "pod", "code"}
		if f%2 == 0 {
			v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: fmt.Sprintf("app_requests_%d_total", f), Help: "Requests."}, names)
			for i := 0; i < seriesPerFam; i++ {
				v.WithLabelValues(fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250), fmt.Sprintf("pod-%d", i%97), fmt.Sprint(200+i%5)).Add(float64(i))
			}
			reg.MustRegister(v)
		} else {
			v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: fmt.Sprintf("app_inflight_%d", f), Help: "In flight."}, names)
			for i := 0; i < seriesPerFam; i++ {
				v.WithLabelValues(fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250), fmt.Sprintf("pod-%d", i%97), fmt.Sprint(200+i%5)).Set(float64(i))
			}
			reg.MustRegister(v)
		}
	}
	return reg
}

var variants = []struct {
	name, relabel, cache, sink string
	// webhook: the sink serves a webhook_receiver holding the same 100k
	// series, pushed through its API (webhookRig); push: one series is
	// pushed (untimed) before each scrape.
	webhook, push bool
}{
	// The sink alone, serving the registry.
	{name: "sink", sink: `inputs = [test.reg]`},
	// A drop rule on the metric name that matches nothing: decided per family.
	{name: "relabel_by_name", relabel: `
rule {
  action        = "drop"
  source_labels = ["__name__"]
  regex         = "debug_.*"
}`, sink: `inputs = [test.rl]`},
	// A label added to every series and a labeldrop: every series is
	// rewritten (served from the per-series cache).
	{name: "relabel_every_series", relabel: `
rule {
  target_label = "env"
  replacement  = "prod"
}
rule {
  action = "labeldrop"
  regex  = "pod_template_hash"
}`, sink: `inputs = [test.rl]`},
	// A cache of the registry: its snapshot changes only at a refresh, and
	// it hands the sink its families encoded (encoded.Gatherer), so a
	// scrape copies the page instead of gathering and encoding it.
	{name: "cache", cache: "refresh_interval = \"1h\"\nmax_staleness = \"2h\"", sink: `inputs = [test.cache]`},
	// A webhook_receiver: it keeps each series' lines and each metric's
	// page, and hands the sink the pages (encoded.Gatherer). Its direct
	// peer is promhttp serving the receiver's own registry.
	{name: "webhook", webhook: true, sink: `inputs = [test.wh]`},
	// The same with one series pushed before every scrape: the scrape
	// re-encodes that series and copies its metric's page.
	{name: "webhook_push", webhook: true, push: true, sink: `inputs = [test.wh]`},
}

func BenchmarkScrape100k(b *testing.B) {
	reg := registry()
	// Built by the first webhook variant and shared by the others (100k
	// pushes take seconds): its resources belong to this benchmark, not to
	// the variant that happens to build it.
	var wh *webhookRig
	parent := b
	for _, enc := range []string{"identity", "gzip"} {
		for _, v := range variants {
			b.Run(enc+"/"+v.name, func(b *testing.B) {
				direct := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true})
				opts := []pipelinetest.Option{pipelinetest.WithGatherer("reg", reg)}
				if v.webhook {
					if wh == nil {
						wh = newWebhookRig(parent, b)
					}
					opts = append(opts, pipelinetest.WithGatherer("wh", wh.gatherer))
					direct = promhttp.HandlerFor(wh.gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true})
				}
				if v.relabel != "" {
					rl := pipelinetest.New(b, "relabel", "input = test.reg\n"+v.relabel, pipelinetest.WithGatherer("reg", reg))
					opts = append(opts, pipelinetest.WithGatherer("rl", rl.Gatherer()))
				}
				if v.cache != "" {
					ch := pipelinetest.New(b, "cache", "input = test.reg\n"+v.cache, pipelinetest.WithGatherer("reg", reg))
					ch.Start()
					g := ch.Gatherer()
					pipelinetest.Eventually(b, time.Minute, func() bool { mfs, _ := g.Gather(); return len(mfs) == families }, "the cache's first refresh")
					opts = append(opts, pipelinetest.WithGatherer("cache", g))
				}
				s := pipelinetest.New(b, "metrics_sink", v.sink, opts...)
				handler := s.Component.(*sink.Component).Handler()

				req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				if enc == "gzip" {
					req.Header.Set("Accept-Encoding", "gzip")
				}
				// Warm up: fill the relabel cache, size the buffers.
				serve(b, direct, req)
				serve(b, handler, req)

				var tDirect, tVariant time.Duration
				var nDirect, nVariant int
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if v.push {
						wh.push(b, i%families, i%seriesPerFam, float64(i+1))
					}
					t0 := time.Now()
					nDirect = serve(b, direct, req)
					t1 := time.Now()
					nVariant = serve(b, handler, req)
					tDirect += t1.Sub(t0)
					tVariant += time.Since(t1)
				}
				b.ReportMetric(float64(tDirect)/1e6/float64(b.N), "direct-ms/scrape")
				b.ReportMetric(float64(tVariant)/1e6/float64(b.N), "sluice-ms/scrape")
				b.ReportMetric(float64(tVariant)/float64(tDirect), "ratio")
				b.ReportMetric(float64(tVariant)/1e3/float64(b.N)/(families*seriesPerFam), "sluice-µs/series")
				// The page size as sent (compressed with gzip): a page
				// compressed family by family is a little larger.
				b.ReportMetric(float64(nDirect), "direct-bytes")
				b.ReportMetric(float64(nVariant), "sluice-bytes")
			})
		}
	}
}

type discard struct {
	h      http.Header
	n      int
	status int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.status = code }
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

var _ io.Writer = (*discard)(nil)

// serve serves one scrape and returns the bytes written.
func serve(b *testing.B, h http.Handler, req *http.Request) int {
	w := &discard{h: http.Header{}, status: http.StatusOK}
	h.ServeHTTP(w, req)
	if w.status != http.StatusOK || w.n < 100_000 {
		b.Fatalf("scrape: status %d, %d bytes", w.status, w.n)
	}
	return w.n
}
