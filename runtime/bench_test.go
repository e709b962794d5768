package runtime_test

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

// BenchmarkNoopReload applies an unchanged 50-component config: the cost of
// a reload that changes nothing (parse, decode, compare; nothing restarts).
func BenchmarkNoopReload(b *testing.B) {
	var sb strings.Builder
	for i := range 25 {
		fmt.Fprintf(&sb, "test_source \"s%d\" {\n  value = %d\n  labels = { n = \"%d\" }\n}\n", i, i, i)
		fmt.Fprintf(&sb, "test_sink \"k%d\" {\n  inputs = [test_source.s%d.metrics, agent.metrics]\n}\n", i, i)
	}
	path := filepath.Join(b.TempDir(), "sluice.hcl")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
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
	b.StopTimer()
	if n := len(ctrl.Components()); n != 50 {
		b.Fatalf("%d components, want 50", n)
	}
}
