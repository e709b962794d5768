package remotewrite

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
)

// receiver is a remote-write receiver for tests: it decodes every request
// (failing the test on a malformed one), answers with respond's status, and
// keeps the accepted samples in arrival order.
type receiver struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	requests int
	accepted []prompb.TimeSeries
	headers  http.Header
	respond  func(n int, r *http.Request) (status int, header http.Header)
}

func newReceiver(t testing.TB, tlsServer bool) *receiver {
	rc := &receiver{t: t}
	h := http.HandlerFunc(rc.serve)
	if tlsServer {
		rc.srv = httptest.NewTLSServer(h)
	} else {
		rc.srv = httptest.NewServer(h)
	}
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/api/v1/write" }

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		rc.t.Errorf("request body is not snappy: %v", err)
		w.WriteHeader(400)
		return
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		rc.t.Errorf("request body is not a WriteRequest: %v", err)
		w.WriteHeader(400)
		return
	}
	rc.mu.Lock()
	n := rc.requests
	rc.requests++
	rc.headers = r.Header.Clone()
	respond := rc.respond
	rc.mu.Unlock()
	status := 204
	if respond != nil {
		var hdr http.Header
		status, hdr = respond(n, r)
		for k, v := range hdr {
			w.Header()[k] = v
		}
	}
	if status/100 == 2 {
		rc.mu.Lock()
		rc.accepted = append(rc.accepted, req.Timeseries...)
		rc.mu.Unlock()
	}
	w.WriteHeader(status)
}

func (rc *receiver) setRespond(f func(n int, r *http.Request) (int, http.Header)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.respond = f
}

func (rc *receiver) numRequests() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests
}

func (rc *receiver) header(name string) string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.headers.Get(name)
}

// seriesKey renders labels as name{a="b",...} (sorted, without __name__).
func seriesKey(lbls []prompb.Label) string {
	var name string
	var parts []string
	for _, l := range lbls {
		if l.Name == "__name__" {
			name = l.Value
			continue
		}
		parts = append(parts, l.Name+"=\""+l.Value+"\"")
	}
	sort.Strings(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

// latest is the last accepted value of every series.
func (rc *receiver) latest() map[string]float64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[string]float64{}
	for _, ts := range rc.accepted {
		for _, s := range ts.Samples {
			out[seriesKey(ts.Labels)] = s.Value
		}
	}
	return out
}

// samples returns every accepted sample of a series, in arrival order.
func (rc *receiver) samples(key string) []prompb.Sample {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []prompb.Sample
	for _, ts := range rc.accepted {
		if seriesKey(ts.Labels) == key {
			out = append(out, ts.Samples...)
		}
	}
	return out
}

func (rc *receiver) total() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, ts := range rc.accepted {
		n += len(ts.Samples) + len(ts.Histograms)
	}
	return n
}

func isStale(v float64) bool { return math.Float64bits(v) == value.StaleNaN }
