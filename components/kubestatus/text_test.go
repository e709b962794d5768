package kubestatus

import (
	"bytes"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/sluicehq/sluice/encoded"
	"github.com/sluicehq/sluice/pipeline"
)

// gatheredText is Gather's answer encoded by expfmt, and GatherText's.
func gatheredText(t *testing.T, g prometheus.Gatherer) (want, got string) {
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
	return wb.String(), gb.String()
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

// TestTextEscaping: the text format's escaping of HELP and label values.
func TestTextEscaping(t *testing.T) {
	if got := string(appendEscaped(nil, "a\\b\"c\nd", true)); got != `a\\b\"c\nd` {
		t.Errorf("label value: %s", got)
	}
	if got := string(appendEscaped(nil, "a\\b\"c\nd", false)); got != `a\\b"c\nd` {
		t.Errorf("help: %s", got)
	}
	for v, want := range map[float64]string{0: "0", 1: "1", 2: "2", 3: "3"} {
		if got := string(appendValue(nil, v)); got != want {
			t.Errorf("%v: %s", v, got)
		}
	}
}
