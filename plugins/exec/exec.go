// Package exec implements the exec_source component: it runs a command on a
// schedule, never through a shell, and parses its standard output as the
// Prometheus text exposition format. Scrapes read the families of the last
// good run.
//
// Reading order:
//
//	exec.go        arguments, defaults, validation, registration
//	run.go         Build, Update, Run: the schedule and one run of the command
//	proc_unix.go   the process group, killed whole on timeout
//	parse.go       output -> metric families (pure; fuzzed)
//	selfmetrics.go sluice_exec_* self-metrics
package exec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline"
)

// Name is the component's HCL block type.
const Name = "exec_source"

// Defaults and bounds.
const (
	DefaultInterval       = 60 * time.Second
	DefaultTimeout        = 10 * time.Second
	DefaultMaxOutputBytes = 4 << 20
	// MinInterval is the shortest interval accepted.
	MinInterval = 100 * time.Millisecond
	// stderrKept is how much of a run's standard error is kept for the log.
	stderrKept = 2048
)

// Arguments configure an exec_source.
type Arguments struct {
	// Command is the program and its arguments, run directly (no shell):
	// Command[0] is a path, absolute or relative to the config file.
	Command  []string      `hcl:"command"`
	Interval time.Duration `hcl:"interval,optional"`
	// Timeout bounds one run; the whole process group is killed at it.
	// Unset (0), it is min(DefaultTimeout, Interval): see RunTimeout.
	Timeout time.Duration `hcl:"timeout,optional"`
	// Env is the command's environment. It often carries credentials, so it
	// is a secret: no diagnostic prints its line and no log its values.
	Env map[string]string `hcl:"env,optional" secret:"true"`
	// InheritEnv adds the agent's environment under Env. Off by default:
	// the agent's environment holds the credentials of other components
	// (DATABASE_URL, API tokens), which a command should get only by name.
	InheritEnv     bool  `hcl:"inherit_env,optional"`
	MaxOutputBytes int64 `hcl:"max_output_bytes,optional"`
}

// Exports of an exec_source.
type Exports struct {
	Metrics prometheus.Gatherer `hcl:"metrics"`
}

// SetDefaults implements pipeline.SetDefaulter.
func (a *Arguments) SetDefaults() {
	*a = Arguments{Interval: DefaultInterval, MaxOutputBytes: DefaultMaxOutputBytes}
}

// DefaultDocs implements pipeline.DefaultDocumenter.
func (a *Arguments) DefaultDocs() map[string]string {
	return map[string]string{"timeout": fmt.Sprintf("min(%v, interval)", DefaultTimeout)}
}

// RunTimeout is the timeout of one run: Timeout when set, else the default
// adapted to Interval (pipeline.DefaultTimeout).
func (a *Arguments) RunTimeout() time.Duration {
	return pipeline.ScheduleTimeout(a.Timeout, a.Interval, DefaultTimeout)
}

// ResolvePaths implements pipeline.PathResolver: a relative program path
// means "next to the config file".
func (a *Arguments) ResolvePaths(configDir string) {
	if len(a.Command) > 0 && strings.ContainsRune(a.Command[0], '/') && !filepath.IsAbs(a.Command[0]) {
		a.Command[0] = filepath.Join(configDir, a.Command[0])
	}
}

// Validate implements pipeline.Validator.
func (a *Arguments) Validate() error {
	var errs []error
	switch {
	case len(a.Command) == 0 || a.Command[0] == "":
		errs = append(errs, pipeline.ErrorAt("command", errors.New(`command must name a program: ["/path/to/program", "arg", ...]`)))
	case !strings.ContainsRune(a.Command[0], '/'):
		// No PATH lookup: which program runs must not depend on the
		// agent's environment.
		errs = append(errs, pipeline.ErrorAt("command", fmt.Errorf("%q is not a path; give the program's path, e.g. \"/usr/bin/%s\" or \"./%s\" (relative to the config file)", a.Command[0], a.Command[0], a.Command[0])))
	}
	for i, s := range a.Command {
		if strings.ContainsRune(s, 0) {
			errs = append(errs, pipeline.ErrorAt("command", fmt.Errorf("element %d holds a NUL byte", i)))
		}
	}
	if a.Interval < MinInterval {
		errs = append(errs, pipeline.ErrorAt("interval", fmt.Errorf("interval must be at least %v", MinInterval)))
	}
	switch {
	case a.Timeout < 0:
		errs = append(errs, pipeline.ErrorAt("timeout", errors.New("timeout must be positive")))
	case a.Timeout > a.Interval:
		errs = append(errs, pipeline.ErrorAt("timeout", fmt.Errorf("timeout (%v) must be at most interval (%v): a run never overlaps the next", a.Timeout, a.Interval)))
	}
	for _, k := range sortedKeys(a.Env) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs = append(errs, pipeline.ErrorAt("env", fmt.Errorf("%q is not a valid environment variable name", k)))
		}
		if strings.ContainsRune(a.Env[k], 0) {
			errs = append(errs, pipeline.ErrorAt("env", fmt.Errorf("the value of %s holds a NUL byte", k)))
		}
	}
	if a.MaxOutputBytes < 1 {
		errs = append(errs, pipeline.ErrorAt("max_output_bytes", errors.New("max_output_bytes must be at least 1")))
	}
	return errors.Join(errs...)
}

// environ is the command's environment: Env, over the agent's when
// InheritEnv is set.
func (a *Arguments) environ() []string {
	m := map[string]string{}
	if a.InheritEnv {
		for _, kv := range os.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok {
				m[k] = v
			}
		}
	}
	for k, v := range a.Env {
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, k+"="+m[k])
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Example is the block `sluice components exec_source` shows.
const Example = `exec_source "raid" {
  command  = ["/usr/local/bin/raid-status", "--format", "prometheus"]
  interval = "30s"
  timeout  = "5s"
  env = {
    PATH = "/usr/bin:/bin"
  }
}`

func init() {
	pipeline.Register(pipeline.Registration[Arguments, Exports]{
		Name:      Name,
		Stability: pipeline.StabilityExperimental,
		Summary:   "runs a command on a schedule (no shell) and exposes its Prometheus text output",
		Example:   Example,
		Build:     build,
	})
}

// Interface guards.
var (
	_ pipeline.Component[Arguments] = (*Component)(nil)
	_ pipeline.HealthReporter       = (*Component)(nil)
	_ pipeline.SetDefaulter         = (*Arguments)(nil)
	_ pipeline.PathResolver         = (*Arguments)(nil)
	_ pipeline.Validator            = (*Arguments)(nil)
	_ pipeline.DefaultDocumenter    = (*Arguments)(nil)
)
