package remotewrite

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"

	"github.com/sluicehq/sluice/components/remotewrite/wal"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

func walBody(url, extra string) string {
	return fmt.Sprintf(`
  inputs          = [test.app]
  scrape_interval = "100ms"
  wal             = true
  %s
  endpoint {
    name = "x"
    url  = %q
  }
  queue {
    batch_send_deadline = "20ms"
    min_backoff         = "10ms"
    max_backoff         = "50ms"
  }
`, extra, url)
}

// TestWALResendsAfterOutageAndRestart: samples gathered while the receiver
// is down survive a restart of the component and are sent, oldest first,
// when the receiver is back; the position saved on stop means nothing is
// sent twice.
//
// The outage is a receiver that always answers 503, and "back up" is a
// second receiver that always accepts, reached by a new instance of the
// component under the same endpoint name (so the same WAL directory):
// flipping one receiver from 503 to 200 after stopping the first instance
// would let a request that instance abandoned on stop, still in the
// receiver's handler at the flip, be accepted, and then be resent from the
// WAL by the second (an at-least-once duplicate that the strict ordering
// check below would reject). The sender's acknowledgement, not the
// receiver's, is what the second instance saves on stop: the test waits
// for it before stopping.
func TestWALResendsAfterOutageAndRestart(t *testing.T) {
	down := newReceiver(t, false)
	down.setRespond(func(int, *http.Request) (int, http.Header) { return 503, nil })
	rc := newReceiver(t, false)
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "level", Help: "h"})
	reg.MustRegister(g)
	data := t.TempDir()

	g.Set(1)
	h := pipelinetest.New(t, "remote_write", walBody(down.url(), ""), pipelinetest.WithGatherer("app", reg), pipelinetest.WithDataPath(data))
	h.Start()
	for i := 1; i <= 5; i++ {
		g.Set(float64(i))
		// Two more records: the second was certainly gathered after Set.
		n0 := walRecords(t, walDir(data, "x"))
		pipelinetest.Eventually(t, 10*time.Second, func() bool {
			return walRecords(t, walDir(data, "x")) >= n0+2
		}, "value %d gathered into the WAL", i)
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return down.numRequests() > 0 }, "sends refused during the outage")
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if down.total() != 0 || rc.total() != 0 {
		t.Fatal("accepted while down")
	}

	// A new instance on the same data, the receiver back up.
	g.Set(100)
	h2 := pipelinetest.New(t, "remote_write", walBody(rc.url(), ""), pipelinetest.WithGatherer("app", reg), pipelinetest.WithDataPath(data))
	h2.Start()
	pipelinetest.Eventually(t, 15*time.Second, func() bool {
		s := rc.samples(`level{}`)
		return len(s) > 0 && s[len(s)-1].Value == 100
	}, "the new value after the backlog")
	s := rc.samples(`level{}`)
	// Oldest first: the values 1..5 (each gathered one or more times), then 100.
	last := 0.0
	for i, smp := range s {
		if smp.Value < last || (i > 0 && smp.Timestamp <= s[i-1].Timestamp) {
			t.Fatalf("not oldest first: %v", s)
		}
		last = smp.Value
	}
	for want := 1.0; want <= 5; want++ {
		found := false
		for _, smp := range s {
			found = found || smp.Value == want
		}
		if !found {
			t.Fatalf("value %v gathered during the outage is missing: %v", want, s)
		}
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return selfMetric(t, h2, "sluice_remote_write_wal_size_bytes", nil) > 0
	}, "the WAL size self-metric")
	// The receiver stores a batch before it answers: wait until the second
	// instance has had the answers for everything seen so far (the backlog
	// included), so that the position it saves on stop is past the backlog.
	accepted := float64(rc.total())
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return selfMetric(t, h2, "sluice_remote_write_samples_total", result("sent")) >= accepted
	}, "the second instance acknowledging the backlog")

	// A third instance does not send the backlog again: the position saved
	// by the second covers it (only the last gathers before the stop, value
	// 100, may be sent twice: delivery is at least once).
	if err := h2.Stop(); err != nil {
		t.Fatal(err)
	}
	countOld := func() int {
		n := 0
		for _, smp := range rc.samples(`level{}`) {
			if smp.Value <= 5 {
				n++
			}
		}
		return n
	}
	before := countOld()
	g.Set(200)
	h3 := pipelinetest.New(t, "remote_write", walBody(rc.url(), ""), pipelinetest.WithGatherer("app", reg), pipelinetest.WithDataPath(data))
	h3.Start()
	pipelinetest.Eventually(t, 15*time.Second, func() bool {
		s := rc.samples(`level{}`)
		return s[len(s)-1].Value == 200
	}, "the third instance's samples")
	if got := countOld(); got != before {
		t.Fatalf("%d samples of the outage resent by the third instance", got-before)
	}
}

// walRecords counts the records in a WAL directory.
func walRecords(t *testing.T, dir string) int {
	segs, err := wal.Segments(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, s := range segs {
		f, err := os.Open(filepath.Join(dir, fmt.Sprintf("%08d.seg", s.N)))
		if err != nil {
			continue
		}
		for {
			if _, err := wal.ReadRecord(f, nil); err != nil {
				break
			}
			n++
		}
		f.Close()
	}
	return n
}

// TestWALCorruptionIgnored: a WAL with a valid record followed by garbage
// is sent up to the garbage, the rest is skipped with a warning and a
// self-metric, and the component carries on.
func TestWALCorruptionIgnored(t *testing.T) {
	data := t.TempDir()
	dir := walDir(data, "x")
	l, err := wal.Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	req := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "from_before"}},
		Samples: []prompb.Sample{{Value: 42, Timestamp: time.Now().Add(-time.Minute).UnixMilli()}},
	}}}
	b, _ := req.Marshal()
	if err := l.Append(b); err != nil {
		t.Fatal(err)
	}
	if err := l.Append([]byte("not a write request")); err != nil { // checksummed but undecodable
		t.Fatal(err)
	}
	l.Close()
	f, _ := os.OpenFile(filepath.Join(dir, "00000000.seg"), os.O_APPEND|os.O_WRONLY, 0)
	_, _ = f.Write([]byte{0, 0, 0, 9, 1, 2, 3, 4, 'g', 'a', 'r'}) // torn record
	f.Close()

	rc := newReceiver(t, false)
	reg, _ := testInputs(t)
	h := pipelinetest.New(t, "remote_write", walBody(rc.url(), ""), pipelinetest.WithGatherer("app", reg), pipelinetest.WithDataPath(data))
	h.Start()
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return len(rc.samples("from_before{}")) == 1 && len(rc.samples(`app_queue_depth{queue="a"}`)) > 0
	}, "the valid record and new samples")
	if c := selfMetric(t, h, "sluice_remote_write_wal_corruptions_total", nil); c != 2 {
		t.Errorf("wal corruptions = %v, want 2 (an undecodable record and a torn one)", c)
	}
}

// TestWALSizeBoundDrops: what an earlier run left beyond max_wal_size is
// dropped, oldest segment first, and counted.
func TestWALSizeBoundDrops(t *testing.T) {
	rc := newReceiver(t, false)
	rc.setRespond(func(int, *http.Request) (int, http.Header) { return 503, nil })
	reg, _ := testInputs(t)
	data := t.TempDir()
	h := pipelinetest.New(t, "remote_write", walBody(rc.url(), ""), pipelinetest.WithGatherer("app", reg), pipelinetest.WithDataPath(data))
	h.Start()
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return walRecords(t, walDir(data, "x")) >= 3 }, "3 gathers in the WAL")
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	left := walRecords(t, walDir(data, "x"))

	h2 := pipelinetest.New(t, "remote_write", walBody(rc.url(), `max_wal_size = "1B"`), pipelinetest.WithGatherer("app", reg), pipelinetest.WithDataPath(data))
	h2.Start()
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return selfMetric(t, h2, "sluice_remote_write_samples_total", result("dropped")) >= float64(left*11)
	}, "the %d records of the first run dropped", left)
	if d := selfMetric(t, h2, "sluice_remote_write_samples_total", result("dropped")); d != float64(left*11) {
		t.Errorf("dropped %v samples, want %d", d, left*11)
	}
	if _, err := os.Stat(filepath.Join(walDir(data, "x"), "00000000.seg")); !os.IsNotExist(err) {
		t.Errorf("the oldest segment is still there: %v", err)
	}
}
