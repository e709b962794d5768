// Package pipeline is Sluice's kernel: the component registry, the HCL
// loader, the dependency graph, the controller that runs components and
// applies reloads, and the agent's HTTP API.
//
// The lifecycle of a config, in reading order:
//
//	registry.go   components register themselves from init()
//	loader.go     parse -> schema check -> reference graph -> cycle check ->
//	              topological decode (decode.go) -> Validate()
//	controller.go apply a loaded graph: keep, update, stop, start
//	runner.go     run one component, restart it with backoff when it fails
//	watcher.go    reload triggers: fsnotify, SIGHUP, POST /-/reload
//	server.go     /-/healthy, /-/ready, /-/reload, /api/v0/components, /metrics
package pipeline

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Arguments is a component's decoded configuration: a struct whose fields
// carry `hcl` tags (see decode.go for the supported tags and types).
type Arguments any

// Exports is the struct of values a component offers to its consumers, with
// `hcl` tags naming each export (e.g. `hcl:"metrics"`).
type Exports any

// Component is a running instance of a registered component type.
type Component interface {
	// Run runs the component until ctx ends. A non-nil error (or an early
	// return) makes the controller restart it with backoff.
	Run(ctx context.Context) error
	// Update applies new arguments while the component runs. It is called
	// concurrently with Run and must be safe for that.
	Update(args Arguments) error
}

// HealthReporter is implemented by components that know more about their
// own health than "Run has not failed".
type HealthReporter interface {
	Health() Health
}

// SetDefaulter is implemented (on the pointer) by Arguments types whose
// optional fields have non-zero defaults. It is called before decoding.
type SetDefaulter interface {
	SetDefaults()
}

// Validator is implemented by Arguments types that check their own values
// after decoding. Return errors.Join of several errors to report them all;
// wrap an error with AttrError to point the diagnostic at one attribute.
type Validator interface {
	Validate() error
}

// PathResolver is implemented (on the pointer) by Arguments types that name
// files. ResolvePaths is called after decoding and before Validate with the
// config file's directory, so that relative paths mean "next to the config"
// and Validate can check the files themselves (a bad mapping file is then a
// diagnostic at load time, not a failure at start).
type PathResolver interface {
	ResolvePaths(configDir string)
}

// FileReferrer is implemented by Arguments types whose meaning depends on
// the content of files they name (e.g. a statsd mapping file). The content
// counts as part of the arguments: a changed file makes the component
// "changed" at the next reload (it gets Update), and the config watcher
// reloads when such a file changes, not only the config file.
type FileReferrer interface {
	ReferencedFiles() []string
}

// HTTPPathUser is implemented by Arguments types of components that mount
// handlers on the agent's HTTP server. The loader refuses a config in which
// two components want the same path, so the clash is a diagnostic instead
// of a component failing at run time.
type HTTPPathUser interface {
	HTTPPaths(componentID string) []string
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
type Options struct {
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
	// returning; a later call with a different value re-evaluates every
	// component that references this one.
	OnExports func(Exports)
	// HTTP mounts handlers on the agent's HTTP server.
	HTTP HTTPMounter
}

// HTTPMounter mounts handlers on the agent's HTTP server. Components mount
// in Run (not in Build) and call the returned function when Run ends.
type HTTPMounter interface {
	// Mount serves h at path. It fails when the path is built in or already
	// mounted by another component.
	Mount(path string, h http.Handler) (unmount func(), err error)
}
