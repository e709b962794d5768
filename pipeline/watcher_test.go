package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicehq/sluice/pipeline"
)

// startWatcher runs a Watcher on path that applies the file to f's
// controller, as `sluice run` does.
func startWatcher(t *testing.T, f *fixture, path string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	w, err := pipeline.NewWatcher(pipeline.WatcherOptions{
		Path:     path,
		Debounce: 20 * time.Millisecond,
		Files:    f.ctrl.WatchedFiles,
		Reload:   func() { _ = f.ctrl.LoadFile(path, false) },
		Logger:   f.ctrl2Logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func (f *fixture) ctrl2Logger() *slog.Logger { return slog.New(slog.NewTextHandler(f.logs, nil)) }

func testutilValue(f *fixture, name string) float64 {
	return testutil.ToFloat64(f.reg2Gauge(name))
}

func componentIDs(c *pipeline.Controller) []string {
	var ids []string
	for _, ci := range c.Components() {
		ids = append(ids, ci.ID)
	}
	return ids
}

func waitForIDs(t *testing.T, c *pipeline.Controller, want ...string) {
	t.Helper()
	waitFor(t, fmt.Sprint("components ", want), func() bool { return slices.Equal(componentIDs(c), want) })
}

// An editor writes a temporary file and renames it over the config.
func TestWatcherEditorWriteAndRename(t *testing.T) {
	f := newFixture(t, pipeline.ControllerOptions{})
	if err := f.apply(`test_source "a" {}`); err != nil {
		t.Fatal(err)
	}
	startWatcher(t, f, f.path)
	tmp := filepath.Join(filepath.Dir(f.path), ".sluice.hcl.swp")
	if err := os.WriteFile(tmp, []byte(`test_source "b" {}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		t.Fatal(err)
	}
	waitForIDs(t, f.ctrl, "test_source.b")
}

// Kubernetes mounts a ConfigMap as DIR/..TIMESTAMP/file, DIR/..data ->
// ..TIMESTAMP and DIR/file -> ..data/file; an update creates a new
// timestamped directory and swaps the ..data symlink atomically.
func TestWatcherConfigMapSymlinkSwap(t *testing.T) {
	f := newFixture(t, pipeline.ControllerOptions{})
	dir := t.TempDir()
	writeVersion := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "sluice.hcl"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeVersion("..2026_11_22_01", `test_source "v1" {}`)
	if err := os.Symlink("..2026_11_22_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sluice.hcl")
	if err := os.Symlink("..data/sluice.hcl", path); err != nil {
		t.Fatal(err)
	}
	if err := f.ctrl.LoadFile(path, false); err != nil {
		t.Fatal(err)
	}
	startWatcher(t, f, path)

	writeVersion("..2026_11_22_02", `test_source "v2" {}`)
	if err := os.Symlink("..2026_11_22_02", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2026_11_22_01")); err != nil {
		t.Fatal(err)
	}
	waitForIDs(t, f.ctrl, "test_source.v2")
}

// An invalid write leaves the pipeline running; fixing it applies.
func TestWatcherInvalidThenFixed(t *testing.T) {
	f := newFixture(t, pipeline.ControllerOptions{})
	if err := f.apply(`test_source "a" {}`); err != nil {
		t.Fatal(err)
	}
	startWatcher(t, f, f.path)
	if err := os.WriteFile(f.path, []byte(`test_source "b" { value = }`), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a failed reload", func() bool {
		return testutilValue(f, "sluice_config_last_reload_successful") == 0
	})
	if got := componentIDs(f.ctrl); !slices.Equal(got, []string{"test_source.a"}) {
		t.Fatalf("components after a bad write: %v", got)
	}
	if err := os.WriteFile(f.path, []byte(`test_source "b" {}`), 0o644); err != nil {
		t.Fatal(err)
	}
	waitForIDs(t, f.ctrl, "test_source.b")
	if v := testutilValue(f, "sluice_config_last_reload_successful"); v != 1 {
		t.Errorf("last reload successful = %v, want 1", v)
	}
}

// A file a component refers to is part of its configuration: changing it
// updates the component, and the watcher notices it.
func TestReferencedFileChangeUpdatesComponent(t *testing.T) {
	j := newJournal(t.Name())
	f := newFixture(t, pipeline.ControllerOptions{})
	data := filepath.Join(filepath.Dir(f.path), "data.txt")
	writeFile(t, data, "one")
	if err := f.apply(`test_source "a" {
  journal = "TestReferencedFileChangeUpdatesComponent"
  file    = "data.txt"
}`); err != nil {
		t.Fatal(err)
	}
	startWatcher(t, f, f.path)
	writeFile(t, data, "two")
	waitFor(t, "an update after the referenced file changed", func() bool { return j.count("update test_source.a") == 1 })
	if n := j.count("build "); n != 1 {
		t.Errorf("component rebuilt %d times; want an in-place update", n-1)
	}
}
