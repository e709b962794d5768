package sink_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/components/sink"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// slowInput is an input whose Gather, once the test closes a gate, blocks
// until the test opens it, so that scrapes pile up on one gather. Each
// gather returns 1000 series of one gauge family whose value is the
// gather's number, so a scrape shows which gather it was served from.
type slowInput struct {
	calls atomic.Int64
	gate  atomic.Pointer[chan struct{}]
}

const slowSeries = 1000

// block makes the next gathers wait until the returned function is called
// (once or more).
func (s *slowInput) block() (release func()) {
	ch := make(chan struct{})
	s.gate.Store(&ch)
	var once sync.Once
	return func() { once.Do(func() { s.gate.Store(nil); close(ch) }) }
}

func (s *slowInput) Gather() ([]*dto.MetricFamily, error) {
	n := s.calls.Add(1)
	if g := s.gate.Load(); g != nil {
		<-*g
	}
	mf := &dto.MetricFamily{Name: proto.String("gather_number"), Help: proto.String("G."), Type: dto.MetricType_GAUGE.Enum()}
	for i := range slowSeries {
		mf.Metric = append(mf.Metric, &dto.Metric{
			Label: []*dto.LabelPair{{Name: proto.String("i"), Value: proto.String(strconv.Itoa(i))}},
			Gauge: &dto.Gauge{Value: proto.Float64(float64(n))},
		})
	}
	return []*dto.MetricFamily{mf}, nil
}

// guarded is for a scrape that must not wait on a blocked gather: if it
// does (the feature broke), the test fails instead of hanging. Not a
// timing assertion: a working sink answers it without waiting on anything.
func guarded() *http.Client { return &http.Client{Timeout: 10 * time.Second} }

type scrapeResult struct {
	resp *http.Response
	body string
}

// scrapeAsync starts a scrape on its own connection.
func scrapeAsync(t *testing.T, url string, hdr map[string]string, wg *sync.WaitGroup, out *scrapeResult) {
	t.Helper()
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
		defer client.CloseIdleConnections()
		out.resp, out.body = get(t, client, url, hdr)
	}()
}

// Scrapes that arrive while a gather is in flight share it: the input is
// gathered once for all of them, each gets the whole result in the format
// and encoding it asked for, and the next scrape gathers afresh.
func TestConcurrentScrapesShareOneGather(t *testing.T) {
	const n = 8
	slow := &slowInput{}
	h, srv := pathSink(t, "inputs = [test.slow]\nmax_concurrent_scrapes = 8", pipelinetest.WithGatherer("slow", slow))
	url := srv.URL + "/metrics/test"
	waitServing(t, url)
	c := h.Component.(*sink.Component)
	before := slow.calls.Load()
	gathersBefore := selfValue(t, h, "sluice_metrics_sink_gathers_total", nil)

	release := slow.block()
	defer release() // a failed test must not leave scrapes blocked: the server's Close waits for them
	var wg sync.WaitGroup
	results := make([]scrapeResult, n)
	for i := range results {
		hdr := map[string]string{}
		if i%2 == 1 {
			hdr["Accept"] = "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
		}
		if i%3 == 0 {
			hdr["Accept-Encoding"] = "gzip"
		}
		scrapeAsync(t, url, hdr, &wg, &results[i])
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return slow.calls.Load() == before+1 && c.Joined() == n-1
	}, "scrapes never all waited on one gather: %d gathers, %d joined", slow.calls.Load()-before, c.Joined())
	release()
	wg.Wait()

	if got := slow.calls.Load() - before; got != 1 {
		t.Fatalf("%d concurrent scrapes gathered the input %d times, want once", n, got)
	}
	if got := selfValue(t, h, "sluice_metrics_sink_gathers_total", nil) - gathersBefore; got != 1 {
		t.Errorf("gathers_total went up by %v, want 1", got)
	}
	want := float64(before + 1)
	for i, r := range results {
		if r.resp.StatusCode != http.StatusOK {
			t.Fatalf("scrape %d: status %d: %s", i, r.resp.StatusCode, r.body)
		}
		om := strings.HasPrefix(r.resp.Header.Get("Content-Type"), "application/openmetrics-text")
		if om != (i%2 == 1) || (r.resp.Header.Get("Content-Encoding") == "gzip") != (i%3 == 0) {
			t.Errorf("scrape %d: Content-Type %q, Content-Encoding %q: not what it asked for", i,
				r.resp.Header.Get("Content-Type"), r.resp.Header.Get("Content-Encoding"))
		}
		mf := parse(t, r.body)["gather_number"]
		if mf == nil || len(mf.Metric) != slowSeries {
			t.Fatalf("scrape %d: not the whole result:\n%.300s", i, r.body)
		}
		for _, m := range mf.Metric {
			if m.Gauge.GetValue() != want {
				t.Fatalf("scrape %d: served from gather %v, want %v", i, m.Gauge.GetValue(), want)
			}
		}
	}

	// The finished gather is not reused: the next scrape gathers again.
	_, body := get(t, srv.Client(), url, nil)
	if v := parse(t, body)["gather_number"].Metric[0].Gauge.GetValue(); v != want+1 {
		t.Fatalf("scrape after the shared gather served gather %v, want a fresh one (%v)", v, want+1)
	}
}

// A scrape that arrives after an Update does not join a gather of the old
// inputs.
func TestScrapeAfterUpdateDoesNotJoinOldGather(t *testing.T) {
	slow := &slowInput{}
	b := counterReg(t, "b_total", 2)
	h, srv := pathSink(t, "inputs = [test.slow]", pipelinetest.WithGatherer("slow", slow), pipelinetest.WithGatherer("b", b))
	url := srv.URL + "/metrics/test"
	waitServing(t, url)
	c := h.Component.(*sink.Component)
	before := slow.calls.Load()

	release := slow.block()
	defer release()
	var wg sync.WaitGroup
	var old scrapeResult
	scrapeAsync(t, url, nil, &wg, &old)
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return slow.calls.Load() == before+1 }, "the first scrape never gathered")
	if err := h.Update("inputs = [test.b]"); err != nil {
		t.Fatal(err)
	}
	// Served while the old gather is still blocked.
	_, body := get(t, guarded(), url, nil)
	if fams := parse(t, body); fams["b_total"] == nil || fams["gather_number"] != nil || c.Joined() != 0 {
		t.Fatalf("scrape after Update joined the old gather:\n%.300s", body)
	}
	release()
	wg.Wait()
	if old.resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape from before the Update: status %d", old.resp.StatusCode)
	}
}

// With max_concurrent_scrapes = 2 and two scrapes in flight, a third is
// answered 503 with Retry-After at once and counted; once the two finish,
// scrapes are served again.
func TestMaxConcurrentScrapes(t *testing.T) {
	slow := &slowInput{}
	h, srv := pathSink(t, "inputs = [test.slow]\nmax_concurrent_scrapes = 2", pipelinetest.WithGatherer("slow", slow))
	url := srv.URL + "/metrics/test"
	waitServing(t, url)
	c := h.Component.(*sink.Component)
	before := slow.calls.Load()

	release := slow.block()
	defer release() // a failed test must not leave scrapes blocked: the server's Close waits for them
	var wg sync.WaitGroup
	results := make([]scrapeResult, 2)
	for i := range results {
		scrapeAsync(t, url, nil, &wg, &results[i])
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return slow.calls.Load() == before+1 && c.Joined() == 1
	}, "two scrapes never in flight together")

	resp, body := get(t, guarded(), url, nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third concurrent scrape: status %d, want 503", resp.StatusCode)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After = %q, want \"1\"", ra)
	}
	if !strings.Contains(body, "Limit of concurrent scrapes reached (2)") {
		t.Errorf("503 body: %q", body)
	}
	if got := selfValue(t, h, "sluice_metrics_sink_scrapes_rejected_total", map[string]string{"reason": "concurrency"}); got != 1 {
		t.Errorf("scrapes_rejected_total{reason=concurrency} = %v, want 1", got)
	}
	if got := selfValue(t, h, "sluice_metrics_sink_scrapes_total", map[string]string{"code": "503"}); got != 1 {
		t.Errorf("scrapes_total{code=503} = %v, want 1", got)
	}
	if got := slow.calls.Load() - before; got != 1 {
		t.Errorf("the rejected scrape gathered: %d gathers", got)
	}

	release()
	wg.Wait()
	for i, r := range results {
		if r.resp.StatusCode != http.StatusOK {
			t.Errorf("admitted scrape %d: status %d", i, r.resp.StatusCode)
		}
	}
	if resp, _ := get(t, srv.Client(), url, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape after the others finished: status %d, want 200", resp.StatusCode)
	}
}

// An input that panics fails the scrapes that joined its gather (500)
// instead of leaving them waiting or serving an empty page; the scrape that
// ran the gather panics as it would have without sharing.
func TestPanickingInputFailsJoinedScrapes(t *testing.T) {
	var armed atomic.Bool
	var calls atomic.Int64
	gate := make(chan struct{})
	var openGate sync.Once
	defer openGate.Do(func() { close(gate) })
	panicky := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		if !armed.Load() {
			return nil, nil
		}
		calls.Add(1)
		<-gate
		panic("input bug")
	})
	h, srv := pathSink(t, "inputs = [test.p]", pipelinetest.WithGatherer("p", panicky))
	c := h.Component.(*sink.Component)
	url := srv.URL + "/metrics/test"
	waitServing(t, url)
	armed.Store(true)

	leaderErr := make(chan error, 1)
	go func() {
		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		leaderErr <- err
	}()
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return calls.Load() == 1 }, "never gathered")
	var wg sync.WaitGroup
	var joined scrapeResult
	scrapeAsync(t, url, nil, &wg, &joined)
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return c.Joined() == 1 }, "second scrape never joined")
	openGate.Do(func() { close(gate) })
	wg.Wait()
	if err := <-leaderErr; err == nil {
		t.Error("the scrape whose gather panicked got a response; want its connection cut by net/http")
	}
	if joined.resp.StatusCode != http.StatusInternalServerError || !strings.Contains(joined.body, "panicked") {
		t.Fatalf("joined scrape of a panicking gather: status %d: %s", joined.resp.StatusCode, joined.body)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("%d gathers, want 1", got)
	}
}

func TestMaxConcurrentScrapesDefault(t *testing.T) {
	args, diags := pipelinetest.Decode(t, "metrics_sink", "inputs = []")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var got int
	switch a := args.(type) {
	case sink.Arguments:
		got = a.MaxConcurrentScrapes
	case *sink.Arguments:
		got = a.MaxConcurrentScrapes
	default:
		t.Fatalf("arguments of type %T", args)
	}
	if got != 10 || sink.DefaultMaxConcurrentScrapes != 10 {
		t.Fatalf("max_concurrent_scrapes defaults to %d, want 10", got)
	}
}
