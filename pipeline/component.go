// Package pipeline is the contract between Sluice and its components:
// everything a component (built in or a plugin) needs, and nothing of the
// runtime that loads configs and runs components (package runtime). A
// plugin that imports it links the standard library, client_golang, hcl
// and cty, and no more (TestContractDependencies).
//
// The contract, in reading order:
//
//	component.go     what a component is: Component, Pending, Options,
//	                 health, the optional interfaces of its Arguments
//	                 (SetDefaulter, Validator, PathResolver, Provisioner...)
//	registry.go      components register themselves from init() (Register);
//	                 ComponentType, the type-erased view the runtime uses
//	errors.go        ErrorAt and ErrorInBlock: a Validate error pointed at
//	                 an attribute or a nested block
//	healthtracker.go HealthTracker, the bookkeeping of HealthReporter
//	listenaddress.go ListenAddressUser: the sockets a component binds
//	paths.go         the agent server's built-in paths
//	gatherer.go      GathererVal and SourceID: gatherers in expressions
//	names.go         ValidMetricName, ValidLabelName: the one rule set for
//	                 names a config declares
//	schedule.go      Schedule: the clock of a source that works on its own
//	                 schedule (interval, jitter, single flight, kick)
//
// Package pipeline/web serves HTTP on a component's own listener with the
// agent's web config (Endpoint, ServeHTTP); it is apart because it links
// exporter-toolkit. Package pipeline/pipelinetest builds a component from
// a config string for tests.
package pipeline

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Component is a built instance of a component type with arguments A.
//
// The kernel keeps four promises to a component, and a component may rely
// on them:
//
//   - Run is called again, on the same instance, after it failed (returned
//     early, returned an error or panicked), after a backoff.
//   - Update may arrive while Run is not running: before the first Run and
//     between a failure and the restart.
//   - Arguments arrive decoded, defaulted, path-resolved, validated and
//     provisioned (see Provisioner): a component never type-asserts or
//     re-checks them.
//   - Exports keep their identity: publishing an equal value again does not
//     make consumers "changed".
type Component[A any] interface {
	// Run runs the component until ctx ends and releases everything it
	// acquired before returning. A non-nil error (or an early return) makes
	// the controller restart it with backoff.
	Run(ctx context.Context) error
	// Update readies new arguments without changing what runs: it acquires
	// what they need (binds a new socket, opens a new pool) and may fail,
	// changing nothing. The kernel then calls exactly one of Commit (switch
	// to them; cannot fail) or Abort (release what Update acquired): Abort
	// when another component of the same reload failed its Update, so that
	// a reload is applied whole or not at all. Update may be called while
	// Run is not running, and concurrently with Run. A nil Pending with a
	// nil error means there is nothing to switch.
	Update(args A) (Pending, error)
}

// Pending is an Update that has acquired what it needs and waits for the
// kernel's decision. Exactly one of its methods is called, once.
type Pending interface {
	// Commit switches the component to the new arguments. It cannot fail:
	// everything that could fail happened in Update.
	Commit()
	// Abort releases what Update acquired; the component carries on with
	// its current arguments.
	Abort()
}

// CommitFunc is the Pending of an Update that acquires nothing: Commit
// calls f, Abort does nothing.
func CommitFunc(f func()) Pending { return commitFunc(f) }

type commitFunc func()

func (f commitFunc) Commit() {
	if f != nil {
		f()
	}
}
func (commitFunc) Abort() {}

// HealthReporter is implemented by components that know more about their
// own health than "Run has not failed".
type HealthReporter interface {
	Health() Health
}

// The optional interfaces below are implemented by a component's Arguments
// type (on the pointer, *A). The kernel calls SetDefaults before decoding
// and Validate after it for every block and nested block; ResolvePaths
// only on the component's top-level Arguments (after decoding, before
// Validate: resolve the paths of nested blocks there); then, once per load
// and only for a block that changed, Provision.

// SetDefaulter is implemented by Arguments types whose optional fields have
// non-zero defaults. It is called before decoding.
type SetDefaulter interface {
	SetDefaults()
}

// Validator is implemented by Arguments types that check their own values
// after decoding. Return errors.Join of several errors to report them all;
// wrap an error with ErrorAt to point the diagnostic at one attribute, and
// with ErrorInBlock at a nested block. Validate runs at every load, changed
// or not, so it should be cheap: reading and compiling belong in Provision.
type Validator interface {
	Validate() error
}

// PathResolver is implemented by Arguments types that name files.
// ResolvePaths is called after decoding and before Validate with the config
// file's directory, so that relative paths mean "next to the config".
type PathResolver interface {
	ResolvePaths(configDir string)
}

// ResolvePath is what a PathResolver does with one path: a relative p is
// made relative to configDir; "" and absolute paths stay as they are.
func ResolvePath(configDir, p string) string {
	if p == "" || filepath.IsAbs(p) || configDir == "" {
		return p
	}
	return filepath.Join(configDir, p)
}

// FileReferrer is implemented by Arguments types whose meaning depends on
// the content of files they name (e.g. a statsd mapping file). The content
// counts as part of the arguments: a changed file makes the component
// "changed" at the next reload (it gets Update, and Provision runs again),
// and the config watcher reloads when such a file changes.
type FileReferrer interface {
	ReferencedFiles() []string
}

// HTTPPathUser is implemented by Arguments types of components that mount
// handlers on the agent's HTTP server. The loader refuses a config in which
// two components want the same path, so the clash is a diagnostic instead
// of a component failing at run time. ListenAddressUser (listen.go) does
// the same for sockets.
type HTTPPathUser interface {
	HTTPPaths(componentID string) []string
}

// Provisioner is implemented by Arguments types that derive something
// costly from their values: a compiled mapping, compiled relabel rules, a
// parsed connection config. Provision runs once per load, after Validate,
// and stores what it computes in unexported fields of the Arguments, which
// Build and Update then use as they are. It is not called for a block whose
// evaluated config and referenced files are unchanged since the running
// component's: the running Arguments (already provisioned) are kept.
// `sluice validate` runs it too, so its errors are load errors: they become
// diagnostics, and ErrorAt and ErrorInBlock work as in Validate.
//
// Provision must not acquire anything that needs releasing (no sockets, no
// goroutines): the load may still be rejected. That is Update's job.
type Provisioner interface {
	Provision(ctx ProvisionContext) error
}

// ProvisionContext is what Provision may use.
type ProvisionContext interface {
	// ConfigDir is the directory of the config file.
	ConfigDir() string
	// ReadFile reads a file through the load's cache: each file is read at
	// most once per load, and the read that fingerprints a FileReferrer's
	// files is the one Provision gets.
	ReadFile(path string) ([]byte, error)
	// Logger is tagged with the component's ID.
	Logger() *slog.Logger
}

// HealthState is the coarse health of a component.
type HealthState string

// Health states, as reported by /api/v0/components and
// sluice_component_health{state}.
const (
	HealthUnknown   HealthState = "unknown"
	HealthHealthy   HealthState = "healthy"
	HealthUnhealthy HealthState = "unhealthy"
	HealthExited    HealthState = "exited"
)

// HealthStates lists every state, in the order the self-metric reports them.
func HealthStates() []HealthState {
	return []HealthState{HealthUnknown, HealthHealthy, HealthUnhealthy, HealthExited}
}

// Health is a component's health at a point in time.
type Health struct {
	State   HealthState `json:"state"`
	Message string      `json:"message,omitempty"`
	// Since is when State last changed.
	Since time.Time `json:"since"`
}

// Options are handed to a component's Build function. Build must not have
// side effects (no sockets, no goroutines): the same Build runs for
// `sluice validate` and for a reload that may still be rejected.
type Options[E any] struct {
	// ID is the component's ID, e.g. "statsd_receiver.app".
	ID string
	// Logger is tagged with the component ID.
	Logger *slog.Logger
	// Registerer is the component's own registerer for self-metrics. The
	// agent serves them on its /metrics with a component_id label; they go
	// away when the component is removed.
	Registerer prometheus.Registerer
	// DataPath is a directory the component may use for state. It is not
	// created until the component asks for it (os.MkdirAll).
	DataPath string
	// ConfigDir is the directory of the config file; relative paths in
	// arguments (mapping files, certificates) resolve against it.
	ConfigDir string
	// OnExports publishes the component's exports. Build must call it before
	// returning; a later call with a different value re-evaluates the
	// components that reference this one (and theirs, transitively), and
	// only those.
	OnExports func(E)
	// HTTP mounts handlers on the agent's HTTP server.
	HTTP HTTPMounter
	// WebConfigFile is the agent's --web.config.file ("" when unset): the
	// TLS and basic-auth config that a listener the component opens for
	// HTTP uses unless the component has its own (see pipeline/web).
	WebConfigFile string
	// Health reads the health of the running graph's components, for a
	// component that reports on the others (heartbeat). Read it in Run,
	// not in Build: the graph being built is not running yet. It may be
	// nil where no graph runs (some unit-test harnesses).
	Health HealthView
}

// HealthView is read access to the health of the running components.
type HealthView interface {
	// ComponentHealth returns the current health of every running
	// component by ID, as /api/v0/components reports it (messages
	// redacted).
	ComponentHealth() map[string]Health
}

// HTTPMounter mounts handlers on the agent's HTTP server. Components mount
// in Run (not in Build) and call the returned function when Run ends.
type HTTPMounter interface {
	// Mount serves h at path; a path ending in "/" serves the subtree
	// below it too. It fails when the path is built in or
	// overlaps one mounted by another component.
	Mount(path string, h http.Handler) (unmount func(), err error)
}
