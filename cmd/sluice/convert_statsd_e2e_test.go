package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/convert/statsdexporter"
)

// statsdExporterBinary returns the statsd_exporter that scripts/ensure-deps.sh
// installs into ~/.cache/sluice, keyed by version; the test is skipped
// locally when it is missing and fails under CI=true.
func statsdExporterBinary(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(home, ".cache")
	}
	bin := filepath.Join(cache, "sluice", "statsd_exporter-"+statsdexporter.Version, "statsd_exporter")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (scripts/ensure-deps.sh installs it)", bin)
		}
		t.Skipf("%s is missing; run scripts/ensure-deps.sh", bin)
	}
	return bin
}

// knownStatsdDifferences are the differences between statsd_exporter
// v0.31.0 and the converted Sluice on the corpus, each with its reason;
// docs/migration.md lists the same. The test fails on any other
// difference, and on one of these that no longer shows.
var knownStatsdDifferences = map[string]string{
	// The receiver drops and counts input that statsd_exporter would store
	// or crash on (NaN and infinite values, le/quantile tags on
	// histograms/summaries) and recovers panics; it declares those reasons
	// at 0 from the start, so that alerts on them have a series.
	`+ statsd_exporter_events_error_total{reason="non_finite_value"} counter 0`: "reason only Sluice counts",
	`+ statsd_exporter_events_error_total{reason="panic"} counter 0`:            "reason only Sluice counts",
	`+ statsd_exporter_events_error_total{reason="reserved_label"} counter 0`:   "reason only Sluice counts",
}

// TestConvertedStatsdExporterMatchesReal is the differential test of
// `sluice convert statsd_exporter`: the real statsd_exporter v0.31.0 and
// Sluice running the converted command line (same flags, other ports)
// receive the same 300 lines over TCP (one connection each, so the order
// is the same), and expose the same series: names, label sets, types and
// values, mapped series and the main self-metrics.
func TestConvertedStatsdExporterMatchesReal(t *testing.T) {
	exporterBin := statsdExporterBinary(t)
	dir := t.TempDir()
	mapping, err := os.ReadFile(filepath.Join("testdata", "statsddiff", "mapping.yml"))
	if err != nil {
		t.Fatal(err)
	}
	mappingPath := filepath.Join(dir, "mapping.yml")
	if err := os.WriteFile(mappingPath, mapping, 0o644); err != nil {
		t.Fatal(err)
	}
	corpus, err := os.ReadFile(filepath.Join("testdata", "statsddiff", "corpus.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(string(corpus), "\n")
	if lines < 200 {
		t.Fatalf("corpus has %d lines, want at least 200", lines)
	}
	flags := func(udp, tcp, web string) []string {
		return []string{"--statsd.listen-udp=" + udp, "--statsd.listen-tcp=" + tcp, "--web.listen-address=" + web,
			"--statsd.mapping-config=" + mappingPath, "--statsd.cache-size=500", "--statsd.cache-type=lru",
			"--statsd.read-buffer=1048576", "--statsd.event-flush-interval=50ms"}
	}

	// All four TCP ports are picked at once, while each is held: picked one
	// by one, a port statsd_exporter had not bound yet could be handed out
	// again to Sluice.
	tcp := distinctTCPAddrs(t, 4)
	expTCP, expWeb, sluiceTCP, sluiceWeb := tcp[0], tcp[1], tcp[2], tcp[3]
	startPeer(t, "statsd_exporter", exec.Command(exporterBin, flags(freeUDPAddr(t), expTCP, expWeb)...))

	code, config := runBinary(t, append([]string{"convert", "statsd_exporter", "--"}, flags(freeUDPAddr(t), sluiceTCP, sluiceWeb)...)...)
	if code != 0 {
		t.Fatalf("sluice convert = %d:\n%s", code, config)
	}
	// runBinary joins stderr (the warnings) and stdout: keep the HCL.
	config = config[strings.Index(config, "# Converted by"):]
	a := launch(t, config, launchOpts{config: filepath.Join(dir, "statsd.hcl")}).waitReady()

	waitScrape := func(what, addr string) {
		a.waitFor(what, func() bool { _, err := scrapeText(addr); return err == nil })
	}
	waitScrape("statsd_exporter's /metrics", expWeb)
	waitScrape("the converted sink's /metrics", sluiceWeb)

	for _, addr := range []string{expTCP, sluiceTCP} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(corpus); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}

	// Both have read every line once lines_total says so; the events
	// then reach the series within statsd_exporter's flush interval and
	// Sluice's batch flush. Wait until the differences are the known
	// ones (they include the self-metrics, so not before every line is
	// in), and fail with the last diff if they never are.
	var diff []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		e, err1 := scrapeText(expWeb)
		s, err2 := scrapeText(sluiceWeb)
		if err1 == nil && err2 == nil {
			es, ss := flattenSeries(e), flattenSeries(s)
			if es["statsd_exporter_lines_total counter"] == strconv.Itoa(lines) && ss["statsd_exporter_lines_total counter"] == strconv.Itoa(lines) {
				diff = diffSeries(es, ss)
				if sameDiffs(diff, knownStatsdDifferences) {
					if len(es) < 50 {
						t.Fatalf("only %d series compared: the corpus did not map", len(es))
					}
					t.Logf("%d series compared; %d known differences", len(es), len(diff))
					return
				}
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("statsd_exporter (-) and converted Sluice (+) differ beyond the known differences:\n%s", strings.Join(diff, "\n"))
}

// comparedSelfMetrics are the self-metrics compared (summed over
// Sluice's component_id label); the others describe each program's
// internals (queues, Go runtime, HTTP handler).
var comparedSelfMetrics = map[string]bool{
	"statsd_exporter_lines_total":           true,
	"statsd_exporter_samples_total":         true,
	"statsd_exporter_tags_total":            true,
	"statsd_exporter_tag_errors_total":      true,
	"statsd_exporter_events_total":          true,
	"statsd_exporter_events_unmapped_total": true,
	"statsd_exporter_events_actions_total":  true,
	"statsd_exporter_sample_errors_total":   true,
	"statsd_exporter_events_conflict_total": true,
	"statsd_exporter_events_error_total":    true,
}

// flattenSeries turns families into "name{labels} type" -> value, one
// entry per sample (quantiles, buckets, _sum and _count of their own),
// skipping the families that describe the program rather than the
// statsd input.
func flattenSeries(fams map[string]*dto.MetricFamily) map[string]string {
	out := map[string]string{}
	add := func(name string, labels []*dto.LabelPair, extra, typ string, v float64) {
		var ls []string
		for _, l := range labels {
			if l.GetName() == "component_id" {
				continue
			}
			ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		if extra != "" {
			ls = append(ls, extra)
		}
		sort.Strings(ls)
		key := name
		if len(ls) > 0 {
			key += "{" + strings.Join(ls, ",") + "}"
		}
		key += " " + typ
		// Summed: Sluice's self-metrics carry component_id.
		prev, _ := strconv.ParseFloat(out[key], 64)
		out[key] = strconv.FormatFloat(prev+v, 'g', -1, 64)
	}
	for name, f := range fams {
		if strings.HasPrefix(name, "statsd_") {
			if !comparedSelfMetrics[name] {
				continue
			}
		} else if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") ||
			strings.HasPrefix(name, "promhttp_") || strings.HasPrefix(name, "sluice_") {
			continue
		}
		typ := strings.ToLower(f.GetType().String())
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				add(name, m.GetLabel(), "", typ, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(name, m.GetLabel(), "", typ, m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				add(name, m.GetLabel(), "", typ, m.GetUntyped().GetValue())
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					add(name, m.GetLabel(), fmt.Sprintf("quantile=%q", strconv.FormatFloat(q.GetQuantile(), 'g', -1, 64)), typ, q.GetValue())
				}
				add(name+"_sum", m.GetLabel(), "", typ, s.GetSampleSum())
				add(name+"_count", m.GetLabel(), "", typ, float64(s.GetSampleCount()))
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					add(name+"_bucket", m.GetLabel(), fmt.Sprintf("le=%q", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)), typ, float64(b.GetCumulativeCount()))
				}
				add(name+"_sum", m.GetLabel(), "", typ, h.GetSampleSum())
				add(name+"_count", m.GetLabel(), "", typ, float64(h.GetSampleCount()))
			}
		}
	}
	return out
}

// diffSeries lists, sorted, what only one side has ("- " statsd_exporter,
// "+ " Sluice) and values that differ ("~ ").
func diffSeries(exp, sl map[string]string) []string {
	var d []string
	for k, v := range exp {
		sv, ok := sl[k]
		switch {
		case !ok:
			d = append(d, "- "+k+" "+v)
		case sv != v:
			d = append(d, fmt.Sprintf("~ %s %s (Sluice: %s)", k, v, sv))
		}
	}
	for k, v := range sl {
		if _, ok := exp[k]; !ok {
			d = append(d, "+ "+k+" "+v)
		}
	}
	sort.Strings(d)
	return d
}

func sameDiffs(diff []string, known map[string]string) bool {
	if len(diff) != len(known) {
		return false
	}
	for _, d := range diff {
		if _, ok := known[d]; !ok {
			return false
		}
	}
	return true
}

// distinctTCPAddrs returns n free loopback TCP addresses, all different:
// each is held open until every one is picked.
func distinctTCPAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}
