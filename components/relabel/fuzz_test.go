package relabel_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// hclString quotes s for HCL: Go's %q escapes, minus what HCL would read
// as a template (${ and %{); the fuzzer still reaches HCL's own escapes
// and invalid sequences through the raw fields.
func hclString(s string) string {
	q := fmt.Sprintf("%q", s)
	q = strings.ReplaceAll(q, "${", "$${")
	return strings.ReplaceAll(q, "%{", "%%{")
}

// FuzzRules builds a relabel rule from arbitrary field values, decodes it
// through the component's Validate and Provision (rule compilation), and
// when it is accepted applies it to a family with several series and
// label values: never a panic, and what it serves is consistent (Gather
// checks names, label names and duplicates). Run it with
//
//	go test -run '^$' -fuzz FuzzRules -fuzztime 60s ./components/relabel/
func FuzzRules(f *testing.F) {
	for _, s := range [][7]string{
		{"replace", "code", ";", "(.*)", "0", "status", "$1"},
		{"drop", "__name__", "", "temp_.*", "0", "", ""},
		{"keep", "code,path", ";", "200;.*", "0", "", ""},
		{"labeldrop", "", "", "pa.*", "0", "", ""},
		{"labelkeep", "", "", "code|__name__", "0", "", ""},
		{"labelmap", "", "", "(c)ode", "0", "", "x_$1"},
		{"hashmod", "path", "", "", "3", "shard", ""},
		{"lowercase", "room", "", "", "0", "room", ""},
		{"uppercase", "room", "", "", "0", "ROOM", ""},
		{"keepequal", "code", "", "", "0", "path", ""},
		{"dropequal", "code", "", "", "0", "code", ""},
		{"replace", "__name__", "", "http_(.*)", "0", "__name__", "web_$1"},
		{"replace", "path", "", "(.*)", "0", "__name__", ""},
		{"replace", "", "", "", "0", "le", "1"},
		{"replace", "code", "", "(", "0", "x", ""},
		{"", "", "", "", "0", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], s[6])
	}
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "Requests."}, []string{"code", "path"})
	c.WithLabelValues("200", "/a").Add(1)
	c.WithLabelValues("500", "/b").Add(2)
	c.WithLabelValues("", "/ä").Add(3)
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "temp_celsius", Help: "Temperature."}, []string{"room"})
	g.WithLabelValues("Kitchen").Set(20)
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "latency_seconds", Help: "L.", Buckets: []float64{0.1, 1}}, []string{"code"})
	h.WithLabelValues("200").Observe(0.5)
	reg.MustRegister(c, g, h)

	f.Fuzz(func(t *testing.T, action, sourceLabels, separator, regex, modulus, target, replacement string) {
		var b strings.Builder
		b.WriteString("input = test.up\nrule {\n")
		if action != "" {
			fmt.Fprintf(&b, "  action = %s\n", hclString(action))
		}
		if sourceLabels != "" {
			var ls []string
			for _, l := range strings.Split(sourceLabels, ",") {
				ls = append(ls, hclString(l))
			}
			fmt.Fprintf(&b, "  source_labels = [%s]\n", strings.Join(ls, ", "))
		}
		if separator != "" {
			fmt.Fprintf(&b, "  separator = %s\n", hclString(separator))
		}
		if regex != "" {
			fmt.Fprintf(&b, "  regex = %s\n", hclString(regex))
		}
		if modulus != "0" && modulus != "" {
			fmt.Fprintf(&b, "  modulus = %s\n", modulus) // raw: a number, or not
		}
		if target != "" {
			fmt.Fprintf(&b, "  target_label = %s\n", hclString(target))
		}
		if replacement != "" {
			fmt.Fprintf(&b, "  replacement = %s\n", hclString(replacement))
		}
		b.WriteString("}\n")
		body := b.String()

		_, diags := pipelinetest.Decode(t, "relabel", body, pipelinetest.WithGatherer("up", reg))
		if diags.HasErrors() {
			if diags.Error() == "" {
				t.Fatal("empty diagnostic")
			}
			return
		}
		hs, err := pipelinetest.TryNew(t, "relabel", body, pipelinetest.WithGatherer("up", reg))
		if err != nil {
			t.Fatalf("decoded but not built:\n%s\n%v", body, err)
		}
		mfs, err := hs.Gatherer().Gather()
		// A relabeling may make series collide or names invalid: that is
		// an error, and what is consistent is still served (checked below).
		if err != nil && err.Error() == "" {
			t.Fatalf("an empty gather error after\n%s", body)
		}
		for _, mf := range mfs {
			checkFamily(t, body, mf)
		}
	})
}

// checkFamily fails on a family no scraper could take: empty or invalid
// names, a label without a name.
func checkFamily(t *testing.T, body string, mf *dto.MetricFamily) {
	t.Helper()
	if mf.GetName() == "" {
		t.Fatalf("a family without a name after\n%s", body)
	}
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "" {
				t.Fatalf("%s: a label without a name after\n%s", mf.GetName(), body)
			}
		}
	}
}
