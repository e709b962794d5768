package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/runtime"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type fixture struct {
	t    *testing.T
	ctrl *runtime.Controller
	reg  *prometheus.Registry
	logs *pipelinetest.Buffer
	path string
	stop func()
}

func newFixture(t *testing.T, opts runtime.ControllerOptions) *fixture {
	t.Helper()
	f := &fixture{t: t, reg: prometheus.NewRegistry(), logs: &pipelinetest.Buffer{}, path: filepath.Join(t.TempDir(), "sluice.hcl")}
	opts.Registry = f.reg
	opts.Logger = slog.New(slog.NewTextHandler(f.logs, nil))
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 10 * time.Millisecond
	}
	opts.HTTP = runtime.NewMounts()
	f.ctrl = runtime.NewController(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = f.ctrl.Run(ctx); close(done) }()
	f.stop = func() { cancel(); <-done }
	t.Cleanup(f.stop)
	return f
}

func (f *fixture) apply(src string) error {
	f.t.Helper()
	if err := os.WriteFile(f.path, []byte(src), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return f.ctrl.LoadFile(f.path, false)
}

// logged returns the component IDs of log lines with the given message, in order.
func (f *fixture) logged(msg string) []string {
	re := regexp.MustCompile(`msg="` + regexp.QuoteMeta(msg) + `"[^\n]*component_id=(\S+)`)
	var ids []string
	for _, m := range re.FindAllStringSubmatch(f.logs.String(), -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestApplyKeepsUpdatesStopsAndStarts(t *testing.T) {
	j := newJournal(t.Name())
	f := newFixture(t, runtime.ControllerOptions{})
	cfg1 := `
test_source "a"    { journal = "TestApplyKeepsUpdatesStopsAndStarts" }
test_source "b"    {
  journal = "TestApplyKeepsUpdatesStopsAndStarts"
  value   = 2
}
test_sink "s" {
  journal = "TestApplyKeepsUpdatesStopsAndStarts"
  inputs  = [test_source.a.metrics, test_source.b.metrics]
}
test_source "old" { journal = "TestApplyKeepsUpdatesStopsAndStarts" }
test_sink "old_sink" {
  journal = "TestApplyKeepsUpdatesStopsAndStarts"
  inputs  = [test_source.old.metrics]
}
`
	if err := f.apply(cfg1); err != nil {
		t.Fatal(err)
	}
	// New components start consumers first.
	if got, want := f.logged("component started"), []string{"test_sink.old_sink", "test_source.old", "test_sink.s", "test_source.b", "test_source.a"}; !slices.Equal(got, want) {
		t.Fatalf("start order %v, want %v", got, want)
	}
	waitFor(t, "5 components running", func() bool { return j.count("run ") == 5 })
	j.take()

	cfg2 := `
test_source "a"    { journal = "TestApplyKeepsUpdatesStopsAndStarts" }
test_source "b"    {
  journal = "TestApplyKeepsUpdatesStopsAndStarts"
  value   = 3
}
test_sink "s" {
  journal = "TestApplyKeepsUpdatesStopsAndStarts"
  inputs  = [test_source.a.metrics, test_source.b.metrics]
}
test_source "c" { journal = "TestApplyKeepsUpdatesStopsAndStarts" }
test_sink "new_sink" {
  journal = "TestApplyKeepsUpdatesStopsAndStarts"
  inputs  = [test_source.c.metrics]
}
`
	if err := f.apply(cfg2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "2 new components running", func() bool { return j.count("run ") == 2 })
	events := j.take()
	// Only b changed; a and s are untouched (not rebuilt, restarted or updated).
	for _, e := range events {
		for _, untouched := range []string{"test_source.a", "test_sink.s"} {
			if strings.HasSuffix(e, " "+untouched) {
				t.Errorf("unchanged component touched: %q", e)
			}
		}
	}
	for _, want := range []string{"update test_source.b", "stop test_source.old", "stop test_sink.old_sink", "build test_source.c", "build test_sink.new_sink"} {
		if !slices.Contains(events, want) {
			t.Errorf("missing event %q in %v", want, events)
		}
	}
	if slices.Contains(events, "build test_source.b") {
		t.Errorf("changed component was rebuilt instead of updated: %v", events)
	}
	// Removed components are cancelled producers first and then waited
	// for together (stopNodes), so the order in which their Run calls
	// return, and journal "stop", is not defined: the test once compared
	// it and failed when the sink returned first. The log line is written
	// per node in the order stopNodes was given, which is the order it
	// cancels them in.
	if got := f.logged("component stopped (removed from config)"); !slices.Equal(got, []string{"test_source.old", "test_sink.old_sink"}) {
		t.Errorf("stop order %v", got)
	}
	started := f.logged("component started")
	if got, want := started[len(started)-2:], []string{"test_sink.new_sink", "test_source.c"}; !slices.Equal(got, want) {
		t.Errorf("start order %v, want %v", got, want)
	}
	// The updated value is visible through the unchanged sink's input.
	var ids []string
	for _, c := range f.ctrl.Components() {
		ids = append(ids, c.ID)
	}
	if want := []string{"test_source.a", "test_source.b", "test_sink.s", "test_source.c", "test_sink.new_sink"}; !slices.Equal(ids, want) {
		t.Errorf("components %v, want %v", ids, want)
	}
}

func TestApplyIsAllOrNothing(t *testing.T) {
	j := newJournal(t.Name())
	f := newFixture(t, runtime.ControllerOptions{})
	good := `test_source "a" { journal = "TestApplyIsAllOrNothing" }`
	if err := f.apply(good); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a running", func() bool { return j.count("run test_source.a") == 1 })
	// b is valid and new; c is invalid: nothing may change, b must not run.
	bad := good + `
test_source "b" { journal = "TestApplyIsAllOrNothing" }
test_source "c" { value = "nope" }
`
	err := f.apply(bad)
	var de *runtime.DiagnosticsError
	if !errors.As(err, &de) {
		t.Fatalf("apply of a bad config: err = %v, want diagnostics", err)
	}
	if got := len(f.ctrl.Components()); got != 1 {
		t.Errorf("%d components after a rejected reload, want 1", got)
	}
	if started := f.logged("component started"); slices.Contains(started, "test_source.b") {
		t.Errorf("component from the rejected config was started: %v", started)
	}
	if v := testutil.ToFloat64(f.reg2Gauge("sluice_config_last_reload_successful")); v != 0 {
		t.Errorf("sluice_config_last_reload_successful = %v, want 0", v)
	}
	// Fixing it applies, and the success gauge returns to 1.
	if err := f.apply(good + "\ntest_source \"b\" { journal = \"TestApplyIsAllOrNothing\" }\n"); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(f.reg2Gauge("sluice_config_last_reload_successful")); v != 1 {
		t.Errorf("sluice_config_last_reload_successful = %v, want 1", v)
	}
	if err := testutil.GatherAndCompare(f.ctrl.Gatherer(), strings.NewReader(`
# HELP sluice_config_reloads_total Config loads and reloads, by result (success or failure).
# TYPE sluice_config_reloads_total counter
sluice_config_reloads_total{result="failure"} 1
sluice_config_reloads_total{result="success"} 2
`), "sluice_config_reloads_total"); err != nil {
		t.Error(err)
	}
}

// reg2Gauge reads one unlabelled gauge from the agent registry.
func (f *fixture) reg2Gauge(name string) prometheus.Collector {
	return gathered{f.reg, name}
}

type gathered struct {
	g    prometheus.Gatherer
	name string
}

func (g gathered) Describe(chan<- *prometheus.Desc) {}
func (g gathered) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := g.g.Gather()
	for _, mf := range mfs {
		if mf.GetName() == g.name && len(mf.GetMetric()) == 1 {
			ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(g.name, "x", nil, nil), prometheus.GaugeValue, mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
}

func TestUnchangedFileIsNotReapplied(t *testing.T) {
	newJournal(t.Name())
	f := newFixture(t, runtime.ControllerOptions{})
	src := `test_source "a" { journal = "TestUnchangedFileIsNotReapplied" }`
	if err := f.apply(src); err != nil {
		t.Fatal(err)
	}
	if err := f.ctrl.LoadFile(f.path, false); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(f.logs.String(), `msg="config applied"`); got != 1 {
		t.Errorf("config applied %d times for an unchanged file, want 1", got)
	}
}

func TestRestartWithBackoff(t *testing.T) {
	j := newJournal(t.Name())
	f := newFixture(t, runtime.ControllerOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: time.Second})
	if err := f.apply(`test_source "flaky" {
  journal    = "TestRestartWithBackoff"
  fail_times = 3
}`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "unhealthy after the first failure", func() bool {
		return f.ctrl.Components()[0].Health.State == pipeline.HealthUnhealthy
	})
	if msg := f.ctrl.Components()[0].Health.Message; !strings.Contains(msg, "injected failure") {
		t.Errorf("health message %q does not carry the error", msg)
	}
	waitFor(t, "the fourth run", func() bool { return j.count("run ") == 4 })
	waitFor(t, "healthy once it stays up", func() bool {
		return f.ctrl.Components()[0].Health.State == pipeline.HealthHealthy
	})
	if err := testutil.GatherAndCompare(f.ctrl.Gatherer(), strings.NewReader(`
# HELP sluice_component_restarts_total Times a component was restarted after its Run failed.
# TYPE sluice_component_restarts_total counter
sluice_component_restarts_total{component_id="test_source.flaky"} 3
`), "sluice_component_restarts_total"); err != nil {
		t.Error(err)
	}
	// The delay doubles: 20ms, 40ms, 80ms at least between runs.
	runs := j.times("run ")
	for i, min := range []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond} {
		if gap := runs[i+1].Sub(runs[i]); gap < min {
			t.Errorf("restart %d came after %v, want at least %v", i+1, gap, min)
		}
	}
}

func TestComponentHealthMetric(t *testing.T) {
	newJournal(t.Name())
	f := newFixture(t, runtime.ControllerOptions{})
	if err := f.apply(`test_source "a" { journal = "TestComponentHealthMetric" }`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "healthy", func() bool { return f.ctrl.Components()[0].Health.State == pipeline.HealthHealthy })
	if err := testutil.GatherAndCompare(f.ctrl.Gatherer(), strings.NewReader(`
# HELP sluice_component_health Health of each component: 1 for its current state, 0 for the others.
# TYPE sluice_component_health gauge
sluice_component_health{component_id="test_source.a",state="exited"} 0
sluice_component_health{component_id="test_source.a",state="healthy"} 1
sluice_component_health{component_id="test_source.a",state="unhealthy"} 0
sluice_component_health{component_id="test_source.a",state="unknown"} 0
`), "sluice_component_health"); err != nil {
		t.Error(err)
	}
	// Removing the component removes its series.
	if err := f.apply(`test_sink "s" { inputs = [] }`); err != nil {
		t.Fatal(err)
	}
	mfs, _ := f.ctrl.Gatherer().Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == "test_source.a" {
					t.Errorf("removed component still has series in %s", mf.GetName())
				}
			}
		}
	}
}

func TestStopAllStopsEveryComponent(t *testing.T) {
	j := newJournal(t.Name())
	f := newFixture(t, runtime.ControllerOptions{})
	if err := f.apply(`
test_source "a" { journal = "TestStopAllStopsEveryComponent" }
test_sink "s" {
  journal = "TestStopAllStopsEveryComponent"
  inputs  = [test_source.a.metrics, agent.metrics]
}`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "running", func() bool { return j.count("run ") == 2 })
	f.stop()
	if got := j.count("stop "); got != 2 {
		t.Errorf("%d components stopped, want 2", got)
	}
	goleak.VerifyNone(t, goleak.IgnoreCurrent())
}

// A reload in which one component cannot take its new arguments is
// rejected whole, like a config that does not load: the other changed
// components' Updates are aborted, nothing changes, and the failure is
// counted.
func TestFailedUpdateRejectsTheWholeReload(t *testing.T) {
	j := newJournal(t.Name())
	f := newFixture(t, runtime.ControllerOptions{})
	cfg := func(aReject bool, bValue int) string {
		return fmt.Sprintf(`
test_source "a" {
  journal       = "TestFailedUpdateRejectsTheWholeReload"
  reject_update = %v
}
test_source "b" {
  journal = "TestFailedUpdateRejectsTheWholeReload"
  value   = %d
}
test_source "c" { journal = "TestFailedUpdateRejectsTheWholeReload" }
`, aReject, bValue)
	}
	if err := f.apply(cfg(false, 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "running", func() bool { return j.count("run ") == 3 })
	j.take()

	// b's change is fine, a's Update fails; c is new.
	err := f.apply(cfg(true, 2) + `test_source "d" { journal = "TestFailedUpdateRejectsTheWholeReload" }`)
	var de *runtime.DiagnosticsError
	if !errors.As(err, &de) {
		t.Fatalf("apply with a failing Update: %v, want a *DiagnosticsError (rejected)", err)
	}
	if len(de.Diags) != 1 || de.Diags[0].Summary != "Failed to apply new arguments" || de.Diags[0].Subject.Start.Line != 2 ||
		!strings.Contains(de.Diags[0].Detail, "update rejected") {
		t.Errorf("diagnostics %v, want one at test_source \"a\" (line 2) saying why", err)
	}
	events := j.take()
	for _, want := range []string{"prepare test_source.b", "abort test_source.b"} {
		if !slices.Contains(events, want) {
			t.Errorf("missing %q in %v", want, events)
		}
	}
	for _, e := range events {
		if strings.HasPrefix(e, "update ") || strings.HasPrefix(e, "set ") || strings.HasPrefix(e, "run ") || strings.HasPrefix(e, "stop ") {
			t.Errorf("a rejected reload changed something: %q in %v", e, events)
		}
	}
	if ids := componentIDs(f.ctrl); !slices.Equal(ids, []string{"test_source.a", "test_source.b", "test_source.c"}) {
		t.Errorf("components %v after a rejected reload", ids)
	}
	if v := testutil.ToFloat64(f.reg2Gauge("sluice_config_last_reload_successful")); v != 0 {
		t.Errorf("sluice_config_last_reload_successful = %v, want 0", v)
	}
	if err := testutil.GatherAndCompare(f.ctrl.Gatherer(), strings.NewReader(`
# HELP sluice_config_reloads_total Config loads and reloads, by result (success or failure).
# TYPE sluice_config_reloads_total counter
sluice_config_reloads_total{result="failure"} 1
sluice_config_reloads_total{result="success"} 1
`), "sluice_config_reloads_total"); err != nil {
		t.Error(err)
	}

	// The same file again retries (and fails again); fixed, it applies.
	if err := f.ctrl.LoadFile(f.path, true); !errors.As(err, &de) {
		t.Errorf("forced reload of the same file: %v, want it rejected again", err)
	}
	if err := f.apply(cfg(false, 2)); err != nil {
		t.Fatal(err)
	}
	if events := j.take(); !slices.Contains(events, "set test_source.b 2") {
		t.Errorf("the fixed reload did not apply b's value: %v", events)
	}
	if n := j.count("run "); n != 0 {
		t.Errorf("components restarted %d times; an Update must not restart them", n)
	}
}

func TestApplyAfterStopIsRefused(t *testing.T) {
	j := newJournal(t.Name())
	f := newFixture(t, runtime.ControllerOptions{})
	f.stop()
	err := f.apply(`test_source "late" { journal = "TestApplyAfterStopIsRefused" }`)
	if !errors.Is(err, runtime.ErrStopped) {
		t.Fatalf("Apply after stop: %v, want ErrStopped", err)
	}
	if n := j.count("build "); n != 0 || len(f.ctrl.Components()) != 0 {
		t.Errorf("a stopped controller built %d components", n)
	}
}

// Exports that a component publishes again unchanged do not make its
// consumers "changed"; new exports do, and the consumers get Update.
func TestRepublishedExports(t *testing.T) {
	j := newJournal(t.Name())
	f := newFixture(t, runtime.ControllerOptions{})
	cfg := func(value int, republish string) string {
		return fmt.Sprintf(`
test_source "a" {
  journal   = "TestRepublishedExports"
  value     = %d
  republish = %q
}
test_sink "s" {
  journal = "TestRepublishedExports"
  inputs  = [test_source.a.metrics]
}`, value, republish)
	}
	if err := f.apply(cfg(1, "same")); err != nil {
		t.Fatal(err)
	}
	if err := f.apply(cfg(2, "same")); err != nil { // a updates, republishes the same
		t.Fatal(err)
	}
	if err := f.ctrl.LoadFile(f.path, true); err != nil { // the same file again
		t.Fatal(err)
	}
	if n := j.count("update test_sink.s"); n != 0 {
		t.Fatalf("the consumer was updated %d times for unchanged exports", n)
	}
	if err := f.apply(cfg(3, "new")); err != nil { // a publishes a new gatherer
		t.Fatal(err)
	}
	waitFor(t, "the consumer to get the new exports", func() bool { return j.count("update test_sink.s") == 1 })
}

// After a rejected config, creating the file it needed is enough: the
// watcher retries without the config itself changing.
func TestRejectedConfigRetriedWhenItsFileAppears(t *testing.T) {
	f := newFixture(t, runtime.ControllerOptions{})
	if err := f.apply(`test_source "a" {}`); err != nil {
		t.Fatal(err)
	}
	startWatcher(t, f, f.path)
	writeFile(t, f.path, `test_source "b" { file = "needed.txt" }`)
	waitFor(t, "the rejected reload", func() bool { return testutilValue(f, "sluice_config_last_reload_successful") == 0 })
	writeFile(t, filepath.Join(filepath.Dir(f.path), "needed.txt"), "here")
	waitForIDs(t, f.ctrl, "test_source.b")
}

// A file read with file() is part of the config: changing it reloads.
func TestFileFunctionContentIsWatched(t *testing.T) {
	f := newFixture(t, runtime.ControllerOptions{})
	dir := filepath.Dir(f.path)
	writeFile(t, filepath.Join(dir, "value.txt"), "one")
	if err := f.apply(`test_source "a" { labels = { v = trimspace(file("value.txt")) } }`); err != nil {
		t.Fatal(err)
	}
	startWatcher(t, f, f.path)
	writeFile(t, filepath.Join(dir, "value.txt"), "two")
	waitFor(t, "a reload after the file() content changed", func() bool {
		return strings.Count(f.logs.String(), `msg="config applied"`) == 2
	})
}

// Components removed by one reload stop together: each is cancelled
// (producers first) before the reload waits for any of them, so k slow
// components cost one StopTimeout, not k. Here neither may finish
// stopping until both have been cancelled; stopped one after another,
// the second would be cancelled only after the first's StopTimeout (a
// minute), and the wait below would time out.
func TestRemovedComponentsStopInParallel(t *testing.T) {
	j := newJournal(t.Name())
	gate := newGate(t.Name())
	f := newFixture(t, runtime.ControllerOptions{StopTimeout: time.Minute})
	keep := fmt.Sprintf("test_source \"keep\" {\n  journal = %q\n}\n", t.Name())
	slow := fmt.Sprintf("test_slowstop \"a\" {\n  journal = %[1]q\n  gate = %[1]q\n}\ntest_slowstop \"b\" {\n  journal = %[1]q\n  gate = %[1]q\n}\n", t.Name())
	if err := f.apply(keep + slow); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both slow components running", func() bool { return j.count("run test_slowstop.") == 2 })

	applied := make(chan error, 1)
	go func() { applied <- f.apply(keep) }()
	waitFor(t, "both removed components cancelled while neither has stopped", func() bool { return j.count("cancelled test_slowstop.") == 2 })
	if n := j.count("stop test_slowstop."); n != 0 {
		t.Fatalf("%d slow components stopped before the gate opened", n)
	}
	select {
	case err := <-applied:
		t.Fatalf("the reload returned (%v) before the removed components stopped", err)
	default:
	}
	close(gate)
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	if n := j.count("stop test_slowstop."); n != 2 {
		t.Fatalf("%d slow components stopped, want 2", n)
	}
	if got := len(f.ctrl.Components()); got != 1 {
		t.Fatalf("%d components after the reload, want 1", got)
	}
}
