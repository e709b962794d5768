package kubestatus

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/sluicehq/sluice/encoded"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// gatheredText is Gather's answer encoded by expfmt, and GatherText's,
// read while no event changed the series: the API server is shared with
// the package's other tests, whose objects a cluster-wide watch also sees,
// so GatherText is read before and after Gather and the three are taken
// only when both GatherText reads agree.
func gatheredText(t *testing.T, g prometheus.Gatherer) (want, got string) {
	t.Helper()
	for range 100 {
		before := encodedText(t, g)
		want = gatherEncoded(t, g)
		if got = encodedText(t, g); got == before {
			return want, got
		}
	}
	t.Fatal("the series changed between every two reads of 100")
	return "", ""
}

// gatherEncoded is Gather's answer encoded by expfmt.
func gatherEncoded(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var wb bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&wb, mf); err != nil {
			t.Fatal(err)
		}
	}
	return wb.String()
}

// encodedText is GatherText's families, checked to be sorted by name.
func encodedText(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	eg, ok := pipeline.UnwrapGatherer(g).(encoded.Gatherer)
	if !ok {
		t.Fatalf("%T is not an encoded.Gatherer", g)
	}
	fams, err := eg.GatherText()
	if err != nil {
		t.Fatal(err)
	}
	var gb bytes.Buffer
	for i, f := range fams {
		if i > 0 && fams[i-1].Name >= f.Name {
			t.Fatalf("families not sorted by name: %s after %s", f.Name, fams[i-1].Name)
		}
		gb.Write(f.Text)
	}
	return gb.String()
}

// TestGatherTextIsGatherEncoded: what metrics_sink serves from GatherText
// is byte for byte expfmt's encoding of Gather, for workload, phase and
// watch series over several kinds and namespaces, and again after a
// status change (the cached encoding is replaced).
func TestGatherTextIsGatherEncoded(t *testing.T) {
	h, cs := startReal(t, "text", `
  workload "server" {
    kind      = "Deployment"
    namespace = "text"
    name      = "argocd-server"
    metric    = "server_status"
  }
  workload "missing" {
    kind      = "Deployment"
    namespace = "text"
    name      = "not-there"
    metric    = "missing_status"
  }
  phase "core" { workloads = ["server", "missing"] }
  watch "all" {
    kinds = ["Deployment", "StatefulSet", "Pod"]
  }
`, argoDeploy("argocd-server", Available), argoDeploy("b-app", Running), argoDeploy("a-app", Pending),
		argoSts("a-app"), pod("p1", "Running", "True", ""), pod("p2", "Pending", "False", "ImagePullBackOff"))
	g := h.Gatherer()
	ns := map[string]string{"namespace": "text"}
	waitValue(t, g, "server_status", ns, float64(Available))
	waitValue(t, g, "sluice_workload_status", map[string]string{"namespace": "text", "kind": "Pod", "name": "p2"}, float64(Pending))
	want, got := gatheredText(t, g)
	if got != want {
		t.Fatalf("GatherText:\n%s\nGather encoded:\n%s", got, want)
	}
	if !bytes.Contains([]byte(got), []byte(`sluice_workload_status_failed{kind="Pod",name="p2",namespace="text"} 1`)) {
		t.Fatalf("the series are not all there:\n%s", got)
	}
	updateDeployment(t, cs, "text", argoDeploy("argocd-server", Running))
	waitValue(t, g, "server_status", ns, float64(Running))
	want, got = gatheredText(t, g)
	if got != want {
		t.Fatalf("after a change, GatherText:\n%s\nGather encoded:\n%s", got, want)
	}
	if !bytes.Contains([]byte(got), []byte("server_status{namespace=\"text\"} 2\n")) {
		t.Fatalf("the change is not in GatherText:\n%s", got)
	}
}

// benchTextComponent is a component whose watch block holds n Deployments
// and n Pods in 20 namespaces, without an API server: the informers are
// filled as their handlers would be.
func benchTextComponent(b *testing.B, n int) *Component {
	b.Helper()
	args := Arguments{MaxSeries: DefaultMaxSeries, Watches: []Watch{{Label: "all", Kinds: []string{"Deployment", "Pod"}, Metric: DefaultWatchMetric}}}
	c, err := build(pipeline.Options[Exports]{ID: "bench", Logger: slog.New(slog.DiscardHandler),
		Registerer: prometheus.NewRegistry(), OnExports: func(Exports) {}}, args)
	if err != nil {
		b.Fatal(err)
	}
	for s, k := range c.plan.Load().scopes {
		in := &informer{scope: s, kind: k, c: c, objs: map[objKey]Result{}, namespaces: map[string]string{}}
		in.hasSynced.Store(true)
		for i := range n {
			in.objs[objKey{fmt.Sprintf("team-%02d", i%20), fmt.Sprintf("app-%05d", i)}] = Result{Status: Status(i % 4), Failed: i%7 == 0}
		}
		c.informers[s] = in
	}
	return c
}

// BenchmarkGatherText: a scrape's encoding of 2000 Deployments and 2000
// Pods (8000 series) when something changed since the last one (the
// encoding is redone), and when nothing did (the bytes are reused); next
// to Gather plus expfmt, the path without GatherText. Reports ns/series.
func BenchmarkGatherText(b *testing.B) {
	c := benchTextComponent(b, 2000)
	series := 8000.0
	b.Run("changed", func(b *testing.B) {
		for b.Loop() {
			c.changed()
			if _, err := c.gatherText(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/series, "ns/series")
	})
	b.Run("unchanged", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.gatherText(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/series, "ns/series")
	})
	b.Run("gather+expfmt", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(c)
		var buf bytes.Buffer
		for b.Loop() {
			mfs, err := reg.Gather()
			if err != nil {
				b.Fatal(err)
			}
			buf.Reset()
			for _, mf := range mfs {
				if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/series, "ns/series")
	})
}

// filledComponent builds a component from body and fills every informer
// of its plan with n objects in namespaces a and b (as the handlers
// would), without an API server.
func filledComponent(t testing.TB, body string, n int) *Component {
	t.Helper()
	args, diags := pipelinetest.Decode(t, Name, body)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	c, err := build(pipeline.Options[Exports]{ID: "t", Logger: slog.New(slog.DiscardHandler),
		Registerer: prometheus.NewRegistry(), OnExports: func(Exports) {}}, args.(Arguments))
	if err != nil {
		t.Fatal(err)
	}
	for s, k := range c.plan.Load().scopes {
		in := &informer{scope: s, kind: k, c: c, objs: map[objKey]Result{}, namespaces: map[string]string{}}
		in.hasSynced.Store(true)
		for i := range n {
			ns := s.Namespace
			if ns == "" {
				ns = []string{"a", "b"}[i%2]
			}
			in.objs[objKey{ns, fmt.Sprintf("obj-%d", (i*7)%n)}] = Result{Status: Status(i % 4), Failed: i%3 == 0}
		}
		c.informers[s] = in
	}
	return c
}

// TestGatherTextPaths: GatherText is Gather encoded on each of its paths:
// scope after scope (one scope per kind and metric), and every series
// sorted (two scopes of a kind under one metric; more objects than
// max_series); a standby exports nothing either way.
func TestGatherTextPaths(t *testing.T) {
	for name, body := range map[string]string{
		"scope-after-scope": `
  watch "all" { kinds = ["Pod", "Deployment", "DaemonSet"] }
  watch "sts" {
    kinds  = ["StatefulSet"]
    metric = "sts_status"
  }
  workload "w" {
    kind = "Deployment"
    namespace = "a"
    name = "obj-1"
    metric = "w_status"
  }`,
		"same-kind-two-namespaces": `
  namespaces = ["a", "b"]
  watch "all" { kinds = ["Deployment", "Pod"] }`,
		"same-kind-two-blocks": `
  watch "x" {
    kinds = ["Deployment"]
    label_selector = "x=1"
  }
  watch "y" {
    kinds = ["Deployment"]
    label_selector = "y=1"
  }`,
		"over-max-series": `
  max_series = 10
  watch "all" { kinds = ["Deployment"] }`,
	} {
		t.Run(name, func(t *testing.T) {
			c := filledComponent(t, body, 40)
			if _, fast := c.watchFamilies(c.plan.Load()); fast != (name == "scope-after-scope") {
				t.Fatalf("scope after scope: %v", fast)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(c)
			want, got := gatheredText(t, textGatherer{reg, c})
			if name == "over-max-series" {
				// Which objects are left out depends on map order, in
				// Gather as in GatherText: compare the counts.
				for _, text := range []string{want, got} {
					if n := strings.Count(text, "sluice_workload_status{"); n != 10 {
						t.Fatalf("%d series, want max_series (10):\n%s", n, text)
					}
				}
				return
			}
			if got != want {
				t.Fatalf("GatherText:\n%s\nGather encoded:\n%s", got, want)
			}
			if len(got) < 200 {
				t.Fatalf("too little to compare:\n%s", got)
			}
			// A status change is in the next encoding.
			for _, in := range c.informers {
				for k := range in.objs {
					in.objs[k] = Result{Status: Available}
				}
			}
			c.changed()
			if want, got := gatheredText(t, textGatherer{reg, c}); got != want {
				t.Fatalf("after a change, GatherText:\n%s\nGather encoded:\n%s", got, want)
			}
		})
	}
}

// TestGatherTextFamiliesAgreeWhileObjectsCome: a watch metric's status
// family and its _failed family come from one walk of each informer, so
// an object that arrives while a scrape encodes is in both or in neither
// (two walks once gave a _failed series without its status series).
func TestGatherTextFamiliesAgreeWhileObjectsCome(t *testing.T) {
	c := filledComponent(t, `watch "all" { kinds = ["Deployment", "Pod"] }`, 20)
	if _, fast := c.watchFamilies(c.plan.Load()); !fast {
		t.Fatal("want the scope-after-scope path")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 3000 {
			for _, in := range c.informers {
				in.mu.Lock()
				in.objs[objKey{"c", fmt.Sprintf("new-%05d", i)}] = Result{Status: Running}
				in.sorted = nil
				in.mu.Unlock()
			}
			c.changed()
		}
	}()
	objects := func(text []byte, prefix string) []string {
		var out []string
		for _, l := range strings.Split(string(text), "\n") {
			if rest, ok := strings.CutPrefix(l, prefix+"{"); ok {
				out = append(out, rest[:strings.Index(rest, "}")])
			}
		}
		return out
	}
	encodings := 0
	for running := true; running; encodings++ {
		select {
		case <-done:
			running = false
		default:
		}
		fams, err := c.encodeText()
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string][]byte{}
		for _, f := range fams {
			byName[f.Name] = f.Text
		}
		status := objects(byName["sluice_workload_status"], "sluice_workload_status")
		failed := objects(byName["sluice_workload_status_failed"], "sluice_workload_status_failed")
		if len(status) < 40 || !slices.Equal(status, failed) {
			t.Fatalf("encoding %d: %d status series, %d failed series; they differ or are too few", encodings, len(status), len(failed))
		}
	}
	t.Logf("%d encodings while objects came", encodings)
}
