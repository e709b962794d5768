package pipeline

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"sync"
)

// Stability tells users how much a component may still change.
type Stability string

// Stability levels.
const (
	StabilityExperimental Stability = "experimental"
	StabilityBeta         Stability = "beta"
	StabilityStable       Stability = "stable"
)

// BuildFunc creates a component from decoded arguments. It must call
// opts.OnExports before returning and must not bind sockets or start
// goroutines.
type BuildFunc func(opts Options, args Arguments) (Component, error)

// Registration describes a component type. Args and Exports are zero values
// of the component's argument and export structs (not pointers).
type Registration struct {
	// Name is the HCL block type, e.g. "statsd_receiver": lower case letters,
	// digits and underscores, starting with a letter.
	Name      string
	Stability Stability
	// Summary is one line for `sluice components`.
	Summary string
	Args    Arguments
	Exports Exports
	Build   BuildFunc
	// Example is a sample HCL block shown by `sluice components NAME`.
	Example string

	// Filled in by Register.
	pkgPath string
}

// PackagePath is the Go package that registered the component.
func (r Registration) PackagePath() string { return r.pkgPath }

var validName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// reservedNames cannot be component names: they are roots of built-in
// references (agent.metrics) or HCL function-like keywords.
var reservedNames = map[string]bool{"agent": true, "env": true, "file": true}

// registry is the one package-level mutable value in Sluice: components add
// themselves from init(), before main runs, and nothing changes it after.
var registry = struct {
	sync.RWMutex
	m map[string]Registration
}{m: map[string]Registration{}}

// Register adds a component type. It panics on a duplicate or malformed
// registration: both are programming errors caught at start-up.
func Register(r Registration) {
	if !validName.MatchString(r.Name) || reservedNames[r.Name] {
		panic(fmt.Sprintf("pipeline.Register: invalid component name %q", r.Name))
	}
	if r.Build == nil {
		panic(fmt.Sprintf("pipeline.Register(%q): Build is nil", r.Name))
	}
	for what, v := range map[string]any{"Args": r.Args, "Exports": r.Exports} {
		if v == nil || reflect.TypeOf(v).Kind() != reflect.Struct {
			panic(fmt.Sprintf("pipeline.Register(%q): %s must be a struct value, got %T", r.Name, what, v))
		}
	}
	switch r.Stability {
	case StabilityExperimental, StabilityBeta, StabilityStable:
	case "":
		r.Stability = StabilityExperimental
	default:
		panic(fmt.Sprintf("pipeline.Register(%q): unknown stability %q", r.Name, r.Stability))
	}
	if err := checkSchema(reflect.TypeOf(r.Args)); err != nil {
		panic(fmt.Sprintf("pipeline.Register(%q): Args: %v", r.Name, err))
	}
	if err := checkSchema(reflect.TypeOf(r.Exports)); err != nil {
		panic(fmt.Sprintf("pipeline.Register(%q): Exports: %v", r.Name, err))
	}
	r.pkgPath = reflect.TypeOf(r.Args).PkgPath()

	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[r.Name]; dup {
		panic(fmt.Sprintf("pipeline.Register: component %q registered twice", r.Name))
	}
	registry.m[r.Name] = r
}

// Lookup returns the registration of a component type.
func Lookup(name string) (Registration, bool) {
	registry.RLock()
	defer registry.RUnlock()
	r, ok := registry.m[name]
	return r, ok
}

// Registrations returns every registered component, sorted by name.
func Registrations() []Registration {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]Registration, 0, len(registry.m))
	for _, r := range registry.m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
