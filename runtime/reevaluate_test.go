package runtime_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/runtime"
)

// readCounter counts the reads of each file the controller makes.
type readCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *readCounter) read(path string) ([]byte, error) {
	r.mu.Lock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[filepath.Clean(path)]++
	r.mu.Unlock()
	return os.ReadFile(path)
}

func (r *readCounter) count(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[filepath.Clean(path)]
}

// An export that changes while the config does not (a source publishes a
// new gatherer from Run) re-evaluates the components that depend on it,
// transitively, from the declarations already parsed: the config file is
// not read again, and the components that do not depend on it are not
// even prepared.
func TestExportChangeReevaluatesOnlyDependents(t *testing.T) {
	j := newJournal(t.Name())
	reads := &readCounter{}
	f := newFixture(t, runtime.ControllerOptions{ReadFile: reads.read})
	cfg := strings.ReplaceAll(`
test_source "a" {
  journal          = "J"
  republish_on_run = true
}
test_sink "s1" {
  journal = "J"
  inputs  = [test_source.a.metrics]
  relay   = true
}
test_sink "s2" {
  journal = "J"
  inputs  = [test_sink.s1.metrics]
}
test_source "b" { journal = "J" }
test_sink "u" {
  journal = "J"
  inputs  = [test_source.b.metrics, agent.metrics]
}
`, `"J"`, `"`+t.Name()+`"`)
	if err := f.apply(cfg); err != nil {
		t.Fatal(err)
	}
	// a's new gatherer reaches s1, whose Commit relays a new one to s2.
	waitFor(t, "s1 updated", func() bool { return j.count("update test_sink.s1") == 1 })
	waitFor(t, "s2 updated", func() bool { return j.count("update test_sink.s2") == 1 })
	events := j.take()
	for _, e := range events {
		if strings.HasPrefix(e, "prepare ") && !strings.HasSuffix(e, ".s1") && !strings.HasSuffix(e, ".s2") {
			t.Errorf("a component that does not depend on a was prepared: %q in %v", e, events)
		}
	}
	builds := 0
	for _, e := range events {
		if strings.HasPrefix(e, "build ") {
			builds++
		}
	}
	if n := builds; n != 5 {
		t.Errorf("%d builds, want the 5 of the first load: an export change rebuilt something", n)
	}
	if n := reads.count(f.path); n != 1 {
		t.Errorf("the config file was read %d times, want 1 (re-evaluation must not re-read it)", n)
	}
	if n := strings.Count(f.logs.String(), `msg="config applied"`); n != 1 {
		t.Errorf("config applied %d times, want 1: an export change is not a reload", n)
	}
	if !strings.Contains(f.logs.String(), `msg="re-evaluated after an exports change"`) {
		t.Errorf("no re-evaluation logged:\n%s", f.logs.String())
	}
}
