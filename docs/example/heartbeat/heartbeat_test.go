package heartbeat_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	_ "github.com/sluicehq/sluice/docs/example/heartbeat"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// The test of docs/writing-components.md.
func TestHeartbeat(t *testing.T) {
	h := pipelinetest.New(t, "heartbeat_source", `
  interval = "1s"
  labels   = { team = "payments" }
`)
	h.Start() // Run in a goroutine; stopped (and its error checked) at cleanup
	pipelinetest.Eventually(t, 5*time.Second, func() bool {
		n, err := testutil.GatherAndCount(h.Gatherer(), "heartbeat_timestamp_seconds")
		return err == nil && n == 1
	}, "a heartbeat")

	// A reload: decode, validate, provision, Update, Commit.
	if err := h.Update(`labels = { team = "search" }`); err != nil {
		t.Fatal(err)
	}
	mfs, err := h.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	if got := mfs[0].GetMetric()[0].GetLabel()[0].GetValue(); got != "search" {
		t.Fatalf("team = %q after Update, want search", got)
	}

	// A bad config is a diagnostic.
	if _, diags := pipelinetest.Decode(t, "heartbeat_source", `interval = "10ms"`); !diags.HasErrors() {
		t.Fatal("interval of 10ms accepted")
	}
}

func TestLabelsFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "labels.txt"), []byte("env=prod\nteam=infra\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := pipelinetest.New(t, "heartbeat_source", `
  labels      = { team = "payments" }
  labels_file = "labels.txt"
`, pipelinetest.WithConfigDir(dir))
	h.Start()
	pipelinetest.Eventually(t, 5*time.Second, func() bool {
		n, err := testutil.GatherAndCount(h.Gatherer(), "heartbeat_timestamp_seconds")
		return err == nil && n == 1
	}, "a heartbeat")
	mfs, _ := h.Gatherer().Gather()
	labels := map[string]string{}
	for _, l := range mfs[0].GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["env"] != "prod" || labels["team"] != "payments" {
		t.Fatalf("labels %v, want env=prod from the file and team=payments from the block", labels)
	}
	if _, diags := pipelinetest.Decode(t, "heartbeat_source", `labels_file = "missing.txt"`, pipelinetest.WithConfigDir(dir)); !diags.HasErrors() || diags[0].Subject.Start.Line != 1 {
		t.Fatalf("missing labels file: %v", diags)
	}
}
