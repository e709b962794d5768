package runtime_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime"
)

func TestLastReloadAndComponentDetail(t *testing.T) {
	f := newFixture(t, runtime.ControllerOptions{})
	if _, ok := f.ctrl.LastReload(); ok {
		t.Fatal("a reload before any load")
	}
	good := `
test_source "a" {
  value  = 3
  labels = { api_token = "tok-very-secret" }
}
test_sink "b" {
  inputs = [test_source.a.metrics]
}
`
	if err := f.apply(good); err != nil {
		t.Fatal(err)
	}
	st, ok := f.ctrl.LastReload()
	if !ok || !st.OK || st.Error != "" || len(st.Diagnostics) != 0 || st.Trigger != "load" || st.Time.IsZero() {
		t.Fatalf("after a good load: %+v", st)
	}

	d, ok := f.ctrl.ComponentDetail("test_source.a")
	if !ok {
		t.Fatal("no detail for test_source.a")
	}
	if d.Type != "test_source" || len(d.Downstreams) != 1 || d.Downstreams[0] != "test_sink.b" || d.ConfigLine != 2 || d.ConfigFile != f.path {
		t.Errorf("detail: %+v", d)
	}
	if !strings.HasPrefix(d.Config, `test_source "a" {`) || !strings.Contains(d.Config, "value  = 3") || !strings.HasSuffix(d.Config, "}\n") {
		t.Errorf("config source:\n%s", d.Config)
	}
	if strings.Contains(d.Config, "tok-very-secret") || !strings.Contains(d.Config, "<redacted>") {
		t.Errorf("config source not redacted:\n%s", d.Config)
	}
	if len(d.Exports) != 1 || d.Exports[0].Name != "metrics" || d.Exports[0].Value != "(metrics)" {
		t.Errorf("exports: %+v", d.Exports)
	}
	if len(d.Metrics) != 1 || d.Metrics[0].Name != "metrics" {
		t.Fatalf("metrics exports: %+v", d.Metrics)
	}
	if mfs, err := d.Metrics[0].Gatherer.Gather(); err != nil || len(mfs) != 1 || mfs[0].GetName() != "test_value" {
		t.Errorf("the metrics export gathers %v, %v", mfs, err)
	}
	if d.SelfMetrics == nil {
		t.Error("no self-metrics gatherer")
	}
	if _, ok := f.ctrl.ComponentDetail("test_source.nope"); ok {
		t.Error("detail for a component that does not exist")
	}
	if ds := f.ctrl.Downstreams(); len(ds["test_source.a"]) != 1 || len(ds["test_sink.b"]) != 0 {
		t.Errorf("downstreams: %v", ds)
	}

	// A rejected config: structured diagnostics, redacted like Error().
	bad := strings.Replace(good, "value  = 3", `value  = 3
  password = "pw-very-secret"`, 1)
	err := f.apply(bad)
	var de *runtime.DiagnosticsError
	if !errors.As(err, &de) {
		t.Fatalf("bad config: %v", err)
	}
	st, _ = f.ctrl.LastReload()
	if st.OK || len(st.Diagnostics) == 0 {
		t.Fatalf("after a bad load: %+v", st)
	}
	rendered := de.Error()
	for _, it := range st.Diagnostics {
		if it.File != f.path || it.Line != 4 || it.Column != 3 || it.Severity != "error" {
			t.Errorf("diagnostic position: %+v", it)
		}
		if !strings.Contains(rendered, it.Summary) || !strings.Contains(rendered, it.Snippet) {
			t.Errorf("item %+v differs from the rendered error:\n%s", it, rendered)
		}
		if !strings.Contains(it.Snippet, "password = <redacted>") || strings.Contains(it.Snippet+it.Detail+it.Summary, "pw-very-secret") {
			t.Errorf("snippet not redacted: %q", it.Snippet)
		}
	}
	// The running component's source is still the running config's.
	if d, _ := f.ctrl.ComponentDetail("test_source.a"); strings.Contains(d.Config, "password") {
		t.Errorf("config source shows the rejected config:\n%s", d.Config)
	}

	// A config that cannot be read.
	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
	if err := f.ctrl.LoadFile(f.path, true); err == nil {
		t.Fatal("missing file loaded")
	}
	st, _ = f.ctrl.LastReload()
	if st.OK || !strings.Contains(st.Error, "reading config") || len(st.Diagnostics) != 0 {
		t.Errorf("after a read error: %+v", st)
	}
}
