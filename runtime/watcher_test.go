package runtime_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicehq/sluice/runtime"
)

// startWatcher runs a Watcher on path that applies the file to f's
// controller, as `sluice run` does.
func startWatcher(t *testing.T, f *fixture, path string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	w, err := runtime.NewWatcher(runtime.WatcherOptions{
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

func componentIDs(c *runtime.Controller) []string {
	var ids []string
	for _, ci := range c.Components() {
		ids = append(ids, ci.ID)
	}
	return ids
}

func waitForIDs(t *testing.T, c *runtime.Controller, want ...string) {
	t.Helper()
	waitFor(t, fmt.Sprint("components ", want), func() bool { return slices.Equal(componentIDs(c), want) })
}

// An editor writes a temporary file and renames it over the config.
func TestWatcherEditorWriteAndRename(t *testing.T) {
	f := newFixture(t, runtime.ControllerOptions{})
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
	f := newFixture(t, runtime.ControllerOptions{})
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
	f := newFixture(t, runtime.ControllerOptions{})
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
	f := newFixture(t, runtime.ControllerOptions{})
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

// startWatcherWith runs a Watcher with options, filling in what
// startWatcher does; it returns the watcher's registry and the number of
// reloads it asked for.
func startWatcherWith(t *testing.T, f *fixture, o runtime.WatcherOptions) (*prometheus.Registry, *atomic.Int64) {
	t.Helper()
	reg := prometheus.NewRegistry()
	var calls atomic.Int64
	path := o.Path
	o.Debounce = 20 * time.Millisecond
	o.Files = f.ctrl.WatchedFiles
	o.Reload = func() { calls.Add(1); _ = f.ctrl.LoadFile(path, false) }
	o.Logger = f.ctrl2Logger()
	o.Registerer = reg
	w, err := runtime.NewWatcher(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return reg, &calls
}

func watcherEvents(t *testing.T, reg *prometheus.Registry, relevant string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sluice_config_watcher_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == relevant {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// mv cfg cfg.old; mkdir cfg; cp cfg.old/* cfg/; then edits: each applies,
// through file system events alone (no periodic check).
func TestWatcherDirectoryReplaced(t *testing.T) {
	f := newFixture(t, runtime.ControllerOptions{})
	root := t.TempDir()
	dir := filepath.Join(root, "cfg")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sluice.hcl")
	writeFile(t, path, `test_source "a" {}`)
	if err := f.ctrl.LoadFile(path, false); err != nil {
		t.Fatal(err)
	}
	startWatcherWith(t, f, runtime.WatcherOptions{Path: path})

	if err := os.Rename(dir, filepath.Join(root, "cfg.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, `test_source "a" {}`)
	waitFor(t, "the new directory to be watched", func() bool {
		return strings.Contains(f.logs.String(), "config directory replaced; watching the new one")
	})
	for _, name := range []string{"b", "c", "d"} {
		writeFile(t, path, fmt.Sprintf("test_source %q {}", name))
		waitForIDs(t, f.ctrl, "test_source."+name)
	}
	// Removed outright and recreated: the same.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, `test_source "e" {}`)
	waitForIDs(t, f.ctrl, "test_source.e")
	writeFile(t, path, `test_source "f" {}`)
	waitForIDs(t, f.ctrl, "test_source.f")
}

// Writes to other files in the config directory (a log file) are ignored:
// they neither reload nor retry a rejected config, so a broken config does
// not fail again at every log line.
func TestWatcherIgnoresUnrelatedFiles(t *testing.T) {
	f := newFixture(t, runtime.ControllerOptions{})
	if err := f.apply(`test_source "a" {}`); err != nil {
		t.Fatal(err)
	}
	reg, calls := startWatcherWith(t, f, runtime.WatcherOptions{Path: f.path})
	writeFile(t, f.path, `test_source "b" { value = }`)
	waitFor(t, "a failed reload", func() bool { return testutilValue(f, "sluice_config_last_reload_successful") == 0 })
	reloads := calls.Load()
	failures := reloadsTotal(t, f, "failure")

	logFile := filepath.Join(filepath.Dir(f.path), "sluice.log")
	for i := range 5 {
		// One write at a time, each seen before the next: inotify merges
		// identical events that were not read yet, which a busy machine
		// lets happen.
		seen := watcherEvents(t, reg, "false")
		writeFile(t, logFile, strings.Repeat("level=error msg=\"config reload failed\"\n", i+1))
		waitFor(t, "a log write to be seen", func() bool { return watcherEvents(t, reg, "false") > seen })
	}
	if got := calls.Load(); got != reloads {
		t.Errorf("writes to an unrelated file caused %d reloads", got-reloads)
	}
	if got := reloadsTotal(t, f, "failure"); got != failures {
		t.Errorf("the rejected config was retried %v times after log writes", got-failures)
	}

	// The config file itself still counts.
	writeFile(t, f.path, `test_source "c" {}`)
	waitForIDs(t, f.ctrl, "test_source.c")
}

// A rejected config is retried when a file it tried to use appears.
func TestWatcherRetriesWhenReferencedFileAppears(t *testing.T) {
	f := newFixture(t, runtime.ControllerOptions{})
	if err := f.apply(`test_source "a" {}`); err != nil {
		t.Fatal(err)
	}
	startWatcherWith(t, f, runtime.WatcherOptions{Path: f.path})
	writeFile(t, f.path, "test_source \"b\" {\n  file = \"data.txt\"\n}\n")
	waitFor(t, "a failed reload", func() bool { return testutilValue(f, "sluice_config_last_reload_successful") == 0 })
	writeFile(t, filepath.Join(filepath.Dir(f.path), "data.txt"), "x")
	waitForIDs(t, f.ctrl, "test_source.b")
}

// A file outside the config's directory is not watched by fsnotify; the
// periodic check still applies its change.
func TestWatcherCheckIntervalSeesFilesElsewhere(t *testing.T) {
	j := newJournal(t.Name())
	f := newFixture(t, runtime.ControllerOptions{})
	data := filepath.Join(t.TempDir(), "data.txt")
	writeFile(t, data, "one")
	if err := f.apply(fmt.Sprintf("test_source \"a\" {\n  journal = %q\n  file = %q\n}\n", t.Name(), data)); err != nil {
		t.Fatal(err)
	}
	startWatcherWith(t, f, runtime.WatcherOptions{Path: f.path, CheckInterval: 20 * time.Millisecond})
	writeFile(t, data, "two")
	waitFor(t, "an update after the file elsewhere changed", func() bool { return j.count("update test_source.a") == 1 })
}

func reloadsTotal(t *testing.T, f *fixture, result string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sluice_config_reloads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
