package pipeline

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"

	"github.com/sluicehq/sluice/internal/schema"
)

// Stability tells users how much a component may still change.
type Stability string

// Stability levels.
const (
	StabilityExperimental Stability = "experimental"
	StabilityBeta         Stability = "beta"
	StabilityStable       Stability = "stable"
)

// Registration describes a component type with arguments A and exports E,
// both structs whose fields carry `hcl` tags (see runtime/decode.go for the
// tags and the supported types; docs/writing-components.md shows them).
type Registration[A, E any] struct {
	// Name is the HCL block type, e.g. "statsd_receiver": lower case letters,
	// digits and underscores, starting with a letter.
	Name      string
	Stability Stability
	// Summary is one line for `sluice components`.
	Summary string
	// Example is a sample HCL block shown by `sluice components NAME`.
	Example string
	// Build creates a component from arguments that are decoded, defaulted,
	// path-resolved, validated and provisioned. It must call
	// opts.OnExports before returning and must not bind sockets or start
	// goroutines.
	Build func(opts Options[E], args A) (Component[A], error)
}

// ComponentType is the kernel's view of a registered component type, the
// same for every A and E: what `sluice components`, the loader and the
// controller work with.
type ComponentType struct {
	Name      string
	Stability Stability
	Summary   string
	Example   string

	pkgPath     string
	argsType    reflect.Type
	exportsType reflect.Type
	build       func(opts Options[any], args any) (Instance, error)
}

// PackagePath is the Go package that registered the component (that of its
// Arguments type).
func (t ComponentType) PackagePath() string { return t.pkgPath }

// ArgsType is the component's Arguments struct type.
func (t ComponentType) ArgsType() reflect.Type { return t.argsType }

// ExportsType is the component's Exports struct type.
func (t ComponentType) ExportsType() reflect.Type { return t.exportsType }

// Build builds a component from arguments of its Arguments type, as
// returned by DecodeArguments; opts.OnExports receives values of its
// Exports type. For tests and tools: the controller builds components
// itself.
func (t ComponentType) Build(opts Options[any], args any) (Instance, error) {
	return t.build(opts, args)
}

// Instance is a built component of any type.
type Instance interface {
	Run(ctx context.Context) error
	// Update is the component's Update; args must be of its Arguments type.
	// A nil Pending is never returned with a nil error.
	Update(args any) (Pending, error)
	// Component is what Build returned (e.g. *statsd.Receiver).
	Component() any
}

type instance[A any] struct{ c Component[A] }

func (i instance[A]) Run(ctx context.Context) error { return i.c.Run(ctx) }
func (i instance[A]) Component() any                { return i.c }

func (i instance[A]) Update(a any) (Pending, error) {
	args, ok := a.(A)
	if !ok {
		return nil, fmt.Errorf("arguments of type %T, want %s", a, reflect.TypeFor[A]())
	}
	p, err := i.c.Update(args)
	if err != nil {
		return nil, err
	}
	if p == nil {
		p = CommitFunc(nil)
	}
	return p, nil
}

// reservedNames cannot be component names: they are roots of built-in
// references (agent.metrics) or HCL function-like keywords.
var reservedNames = map[string]bool{"agent": true, "env": true, "file": true}

// registry is the one package-level mutable value in Sluice: components add
// themselves from init(), before main runs, and nothing changes it after.
var registry = struct {
	sync.RWMutex
	m map[string]ComponentType
}{m: map[string]ComponentType{}}

// Register adds a component type. It panics on a duplicate or malformed
// registration: both are programming errors caught at start-up. That
// includes an Arguments field the decoder cannot fill and an Exports field
// the evaluator cannot turn into a value for expressions; the message names
// the field and its type.
func Register[A, E any](r Registration[A, E]) {
	if !schema.ValidName(r.Name) || reservedNames[r.Name] {
		panic(fmt.Sprintf("pipeline.Register: invalid component name %q", r.Name))
	}
	if r.Build == nil {
		panic(fmt.Sprintf("pipeline.Register(%q): Build is nil", r.Name))
	}
	at, et := reflect.TypeFor[A](), reflect.TypeFor[E]()
	for what, t := range map[string]reflect.Type{"Arguments": at, "Exports": et} {
		if t.Kind() != reflect.Struct {
			panic(fmt.Sprintf("pipeline.Register(%q): %s type %s must be a struct", r.Name, what, t))
		}
	}
	switch r.Stability {
	case StabilityExperimental, StabilityBeta, StabilityStable:
	case "":
		r.Stability = StabilityExperimental
	default:
		panic(fmt.Sprintf("pipeline.Register(%q): unknown stability %q", r.Name, r.Stability))
	}
	if err := schema.CheckArguments(at); err != nil {
		panic(fmt.Sprintf("pipeline.Register(%q): Arguments %s: %v", r.Name, at, err))
	}
	if err := schema.CheckExports(et); err != nil {
		panic(fmt.Sprintf("pipeline.Register(%q): Exports %s: %v", r.Name, et, err))
	}
	build := r.Build
	t := ComponentType{
		Name: r.Name, Stability: r.Stability, Summary: r.Summary, Example: r.Example,
		pkgPath: at.PkgPath(), argsType: at, exportsType: et,
		build: func(o Options[any], a any) (Instance, error) {
			args, ok := a.(A)
			if !ok {
				return nil, fmt.Errorf("%s: arguments of type %T, want %s", r.Name, a, at)
			}
			publish := o.OnExports
			c, err := build(Options[E]{
				ID: o.ID, Logger: o.Logger, Registerer: o.Registerer, DataPath: o.DataPath,
				ConfigDir: o.ConfigDir, HTTP: o.HTTP, WebConfigFile: o.WebConfigFile, Health: o.Health, Fixtures: o.Fixtures,
				HTTPTimeouts: o.HTTPTimeouts,
				OnExports: func(e E) {
					if publish != nil {
						publish(e)
					}
				},
			}, args)
			if err != nil {
				return nil, err
			}
			if c == nil {
				return nil, fmt.Errorf("%s: Build returned no component", r.Name)
			}
			return instance[A]{c}, nil
		},
	}

	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[r.Name]; dup {
		panic(fmt.Sprintf("pipeline.Register: component %q registered twice", r.Name))
	}
	registry.m[r.Name] = t
}

// Lookup returns a registered component type.
func Lookup(name string) (ComponentType, bool) {
	registry.RLock()
	defer registry.RUnlock()
	t, ok := registry.m[name]
	return t, ok
}

// Registrations returns every registered component type, sorted by name.
func Registrations() []ComponentType {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]ComponentType, 0, len(registry.m))
	for _, t := range registry.m {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
