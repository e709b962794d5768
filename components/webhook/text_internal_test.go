package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/encoded"
)

// textDefs are metrics of every type, with labels whose names are not in
// alphabetical order (the registry sorts series by the values of the
// labels sorted by name), help that needs escaping, pre-created
// combinations and a ttl.
func textDefs(help string) map[string]*metricDef {
	defs := map[string]*metricDef{
		"c_total": {name: "c_total", typ: "counter", help: help, labels: []string{"zone", "app"}, maxSeries: 1000},
		"g":       {name: "g", typ: "gauge", labels: []string{"b", "a", "c"}, maxSeries: 1000, ttl: time.Hour},
		"h":       {name: "h", typ: "histogram", help: "a \\ help\nline", labels: []string{"k"}, buckets: []float64{0.5, 1, 10}, maxSeries: 1000},
		"none":    {name: "none", typ: "gauge", labels: []string{}, maxSeries: 10},
		"i":       {name: "i", typ: "counter", labels: []string{"s"}, maxSeries: 1000, initial: initialCombinations([]string{"s"}, map[string][]string{"s": {"x", "y"}})},
	}
	for _, d := range defs {
		d.desc = prometheus.NewDesc(d.name, d.helpText(), d.labels, nil)
	}
	return defs
}

// gatheredText is what the registry's Gather encodes to.
func gatheredText(t *testing.T, s *store) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{s})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams, err := encoded.Encode(mfs)
	if err != nil {
		t.Fatal(err)
	}
	return joined(fams)
}

func joined(fams []encoded.Family) string {
	var b strings.Builder
	for _, f := range fams {
		b.Write(f.Text)
	}
	return b.String()
}

func storeText(t *testing.T, s *store) (string, uint64) {
	t.Helper()
	fams, v, _, err := s.gatherText(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(fams); i++ {
		if fams[i-1].Name >= fams[i].Name {
			t.Fatalf("families not sorted: %s before %s", fams[i-1].Name, fams[i].Name)
		}
	}
	return joined(fams), v
}

// TestGatherTextEqualsGatherRandom applies random changes of every kind
// (new series, value changes, deletes, resets, drops, expiry, help and
// initial_label_values changes, a restore) and checks after each batch
// that the text equals the registry's Gather encoded, and that its
// version moves exactly when the text may change.
func TestGatherTextEqualsGatherRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := newStore()
	s.setDefsLocked(textDefs("c help"), 1)
	now := time.Now().UnixMilli()
	vals := []string{"", "a", "b", "a\"b", "x\\y", "line\nbreak", "zz", "é", "10", "9"}
	v := func() string { return vals[rng.IntN(len(vals))] }
	lastText, lastVer := "", uint64(0)
	for round := 0; round < 300; round++ {
		for k := rng.IntN(20); k >= 0; k-- {
			var o op
			switch rng.IntN(12) {
			case 0, 1, 2:
				o = op{Verb: "add", Metric: "c_total", Labels: []string{v(), v()}, Value: float64(rng.IntN(5))}
			case 3, 4:
				o = op{Verb: "set", Metric: "g", Labels: []string{v(), v(), v()}, Value: rng.Float64()*100 - 50}
			case 5, 6:
				o = op{Verb: "observe", Metric: "h", Labels: []string{v()}, Value: rng.Float64() * 20}
			case 7:
				o = op{Verb: "delete", Metric: "c_total", Labels: []string{v(), v()}}
			case 8:
				o = op{Verb: "inc", Metric: "i", Labels: []string{[]string{"x", "y", "z"}[rng.IntN(3)]}, Value: 1}
			case 9:
				o = op{Verb: "delete", Metric: "i", Labels: []string{[]string{"x", "z"}[rng.IntN(2)]}}
			case 10:
				o = op{Verb: []string{"reset", "drop"}[rng.IntN(2)], Metric: []string{"c_total", "g", "i"}[rng.IntN(3)]}
			case 11:
				o = op{Verb: "set", Metric: "none", Labels: []string{}, Value: float64(rng.IntN(3))}
			}
			// Some series of g are old enough to have expired.
			o.Time = now
			if o.Metric == "g" && rng.IntN(4) == 0 {
				o.Time = now - 2*time.Hour.Milliseconds()
			}
			s.mu.Lock()
			_ = s.applyLocked(o)
			s.mu.Unlock()
		}
		switch round % 50 {
		case 10: // a reload that changes help and the pre-created combinations
			defs := textDefs(fmt.Sprintf("c help %d", round))
			defs["i"].initial = initialCombinations([]string{"s"}, map[string][]string{"s": {"y", "w"}})
			s.mu.Lock()
			s.setDefsLocked(defs, now)
			s.mu.Unlock()
		case 20: // a reload that removes a metric
			defs := textDefs("c help")
			delete(defs, "none")
			s.mu.Lock()
			s.setDefsLocked(defs, now)
			s.mu.Unlock()
		case 30: // restored from a snapshot into a fresh store
			s.mu.Lock()
			b, err := s.snapshotLocked(1)
			s.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			var snap snapshot
			if err := json.Unmarshal(b, &snap); err != nil {
				t.Fatal(err)
			}
			s = newStore()
			s.setDefsLocked(textDefs("c help"), now)
			s.mu.Lock()
			s.loadSnapshotLocked(&snap)
			s.mu.Unlock()
			lastVer = 0
		}
		got, ver := storeText(t, s)
		want := gatheredText(t, s)
		if got != want {
			t.Fatalf("round %d: text differs from Gather:\n--- text\n%s\n--- gather\n%s", round, got, want)
		}
		if got == "" {
			continue
		}
		if ver == lastVer && got != lastText {
			t.Fatalf("round %d: the text changed but its version did not (%d)", round, ver)
		}
		// Nothing changed: same version, same bytes (the pages reused).
		again, ver2 := storeText(t, s)
		if ver2 != ver || again != got {
			t.Fatalf("round %d: a scrape without changes moved the version (%d -> %d) or the text", round, ver, ver2)
		}
		lastText, lastVer = got, ver
	}
}

// TestGatherTextReusesPages: an unchanged metric's page is handed out as
// it is, and a change to one series re-encodes that series only.
func TestGatherTextReusesPages(t *testing.T) {
	s := newStore()
	s.setDefsLocked(textDefs("help"), 1)
	now := time.Now().UnixMilli()
	s.mu.Lock()
	for i := 0; i < 100; i++ {
		_ = s.applyLocked(op{Verb: "add", Metric: "c_total", Labels: []string{fmt.Sprint(i), "app"}, Value: 1, Time: now})
		_ = s.applyLocked(op{Verb: "observe", Metric: "h", Labels: []string{fmt.Sprint(i)}, Value: 1, Time: now})
	}
	s.mu.Unlock()
	first, _, _, _ := s.gatherText(time.Now())
	page := func(fams []encoded.Family, name string) []byte {
		for _, f := range fams {
			if f.Name == name {
				return f.Text
			}
		}
		t.Fatalf("no family %s", name)
		return nil
	}
	s.mu.Lock()
	_ = s.applyLocked(op{Verb: "add", Metric: "c_total", Labels: []string{"50", "app"}, Value: 1, Time: now})
	sr := s.metrics["c_total"].series[seriesKey([]string{"50", "app"})]
	other := s.metrics["c_total"].series[seriesKey([]string{"51", "app"})]
	if sr.text != nil || other.text == nil {
		t.Fatal("a change must drop the text of the series it touched, and only that one")
	}
	s.mu.Unlock()
	second, _, _, _ := s.gatherText(time.Now())
	if &page(first, "h")[0] != &page(second, "h")[0] {
		t.Error("the page of an unchanged metric was rebuilt")
	}
	if bytes.Equal(page(first, "c_total"), page(second, "c_total")) {
		t.Error("the page of the changed metric was not rebuilt")
	}
	if !strings.Contains(string(page(second, "c_total")), `c_total{app="app",zone="50"} 2`+"\n") {
		t.Errorf("changed series not in the page:\n%s", page(second, "c_total"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sr.text == nil || &other.text[0] != &page(second, "c_total")[bytes.Index(page(second, "c_total"), other.text)] {
		t.Error("after a scrape, series lines must be slices of the current page (the old page freed)")
	}
}

// TestGatherTextConcurrentPushes: scrapes during pushes (-race), and the
// last scrape equals Gather.
func TestGatherTextConcurrentPushes(t *testing.T) {
	s := newStore()
	s.setDefsLocked(textDefs("help"), 1)
	var wg, scraper sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				s.apply([]op{{Verb: "add", Metric: "c_total", Labels: []string{fmt.Sprint(i % 300), fmt.Sprint(w)}, Value: 1, Time: time.Now().UnixMilli()}})
				if i%200 == 0 {
					s.apply([]op{{Verb: "reset", Metric: "c_total"}})
				}
			}
		}(w)
	}
	scraper.Add(1)
	go func() {
		defer scraper.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, _, _, err := s.gatherText(time.Now()); err != nil {
				t.Error(err)
				return
			}
			_ = gatheredText(t, s)
		}
	}()
	wg.Wait()
	close(stop)
	scraper.Wait()
	got, _ := storeText(t, s)
	if want := gatheredText(t, s); got != want || got == "" {
		t.Fatalf("after concurrent pushes, text differs from Gather:\n%s\n---\n%s", got, want)
	}
}

// TestGatherTextServedByPromhttp: what promhttp serves from the receiver's
// registry is the same page.
func TestGatherTextServedByPromhttp(t *testing.T) {
	s := newStore()
	s.setDefsLocked(textDefs("help"), 1)
	s.apply([]op{{Verb: "observe", Metric: "h", Labels: []string{"q"}, Value: 3, Time: time.Now().UnixMilli()}})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{s})
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	got, _ := storeText(t, s)
	if rec.Body.String() != got {
		t.Fatalf("promhttp:\n%s\ntext:\n%s", rec.Body.String(), got)
	}
}
