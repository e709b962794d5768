package all_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/runtime"
)

// BenchmarkNoopReloadRealComponents is a forced reload (SIGHUP) of an
// unchanged config of real components: a statsd_receiver with a mapping
// file of 200 mappings, a relabel with 20 rules, a sink. Nothing changes,
// so nothing should be read twice or compiled.
func BenchmarkNoopReloadRealComponents(b *testing.B) {
	dir := b.TempDir()
	var m strings.Builder
	m.WriteString("mappings:\n")
	for i := range 200 {
		fmt.Fprintf(&m, "- match: \"app%d.*.*\"\n  name: \"app%d_${1}_total\"\n  labels: {kind: \"$2\"}\n", i, i)
	}
	var rules strings.Builder
	for i := range 20 {
		fmt.Fprintf(&rules, "  rule {\n    action        = \"drop\"\n    source_labels = [\"__name__\"]\n    regex         = \"debug%d_.*\"\n  }\n", i)
	}
	cfg := `
statsd_receiver "app" {
  listen_udp   = "127.0.0.1:0"
  mapping_file = "mapping.yml"
}
relabel "app" {
  input = statsd_receiver.app.metrics
` + rules.String() + `}
metrics_sink "out" {
  inputs = [relabel.app.metrics]
  listen = "127.0.0.1:0"
}
`
	for name, content := range map[string]string{"mapping.yml": m.String(), "sluice.hcl": cfg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(dir, "sluice.hcl")
	ctrl := runtime.NewController(runtime.ControllerOptions{Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	pipelinetest.RunController(b, ctrl)
	if err := ctrl.LoadFile(path, true); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := ctrl.LoadFile(path, true); err != nil {
			b.Fatal(err)
		}
	}
}
