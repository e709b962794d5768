package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// coreModule is Sluice itself: it provides the CLI (sluicecmd) and the
// built-in components (components/all).
const coreModule = "github.com/sluicehq/sluice"

// zeroVersion is the version required of a module that is replaced by a
// directory and asked for without a version: any version would do, as the
// replacement wins; this is the one the go command itself uses.
const zeroVersion = "v0.0.0-00010101000000-000000000000"

// dep is one module that goes into the binary: Sluice or a plugin.
type dep struct {
	Module string
	// Version is a version or query (v1.2.0, latest, a commit); "" means
	// "whatever go mod tidy picks" (the latest release) unless Dir is set.
	Version string
	// Dir is the absolute directory that replaces the module, or "".
	Dir string
	// ReplaceModule and ReplaceVersion replace the module with another
	// module (a fork), or are "".
	ReplaceModule, ReplaceVersion string
}

// String says what goes in, for the summary and error messages.
func (d dep) String() string {
	s := d.Module
	if d.Version != "" {
		s += "@" + d.Version
	}
	switch {
	case d.Dir != "":
		s += " => " + d.Dir
	case d.ReplaceModule != "":
		s += " => " + d.ReplaceModule + "@" + d.ReplaceVersion
	}
	return s
}

// parseWith parses a --with value: MODULE[@VERSION][=REPLACEMENT], where
// REPLACEMENT is a directory (relative to cwd, made absolute) or another
// MODULE@VERSION.
func parseWith(s, cwd string) (dep, error) {
	spec, repl, replaced := strings.Cut(s, "=")
	mod, version, versioned := strings.Cut(spec, "@")
	var d dep
	if err := checkModulePath(mod); err != nil {
		return d, fmt.Errorf("--with %q: %w", s, err)
	}
	if versioned && (version == "" || strings.ContainsAny(version, " \t")) {
		return d, fmt.Errorf("--with %q: empty or malformed version after @", s)
	}
	d.Module, d.Version = mod, version
	if !replaced {
		return d, nil
	}
	if repl == "" {
		return d, fmt.Errorf("--with %q: empty replacement after =", s)
	}
	if isLocalPath(repl, cwd) {
		dir := repl
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(cwd, dir)
		}
		dir = filepath.Clean(dir)
		info, err := os.Stat(dir)
		if err != nil {
			return d, fmt.Errorf("--with %q: replacement directory: %w", s, err)
		}
		if !info.IsDir() {
			return d, fmt.Errorf("--with %q: replacement %s is not a directory", s, dir)
		}
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
			return d, fmt.Errorf("--with %q: %s is not the root of a Go module (no go.mod)", s, dir)
		}
		d.Dir = dir
		return d, nil
	}
	rmod, rversion, ok := strings.Cut(repl, "@")
	if !ok || rversion == "" {
		return d, fmt.Errorf("--with %q: replacement %q is neither a directory (start it with ./ or ../ or /) nor MODULE@VERSION", s, repl)
	}
	if err := checkModulePath(rmod); err != nil {
		return d, fmt.Errorf("--with %q: replacement: %w", s, err)
	}
	d.ReplaceModule, d.ReplaceVersion = rmod, rversion
	return d, nil
}

// isLocalPath tells a directory replacement from a module one, the way
// go.mod's replace directive does: a directory starts with ./, ../ or / (or
// is . or ..); anything that exists as a directory counts too.
func isLocalPath(s, cwd string) bool {
	if s == "." || s == ".." || filepath.IsAbs(s) ||
		strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") ||
		strings.HasPrefix(s, `.\`) || strings.HasPrefix(s, `..\`) {
		return true
	}
	if strings.Contains(s, "@") {
		return false
	}
	info, err := os.Stat(filepath.Join(cwd, s))
	return err == nil && info.IsDir()
}

func checkModulePath(p string) error {
	switch {
	case p == "":
		return errors.New("no module path")
	case strings.ContainsAny(p, " \t\\:") || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//"):
		return fmt.Errorf("%q is not a module path", p)
	case strings.HasPrefix(p, ".") || strings.HasPrefix(p, "-"):
		return fmt.Errorf("%q is not a module path (a directory goes after =: --with MODULE=DIR)", p)
	}
	return nil
}

// plan is everything that goes into a custom binary.
type plan struct {
	Core    dep
	Plugins []dep
	Output  string // absolute path of the binary
	Race    bool
	// Distribution names the set of components (custom unless told).
	Distribution string
	// Components are the packages of the standard components that go in,
	// sorted; nil means all of them (components/all).
	Components []string
	// Version, Revision and Branch are stamped into
	// github.com/prometheus/common/version, as the Makefile does.
	Version, Revision, Branch string
}

// planInput is what the command line says, before defaults.
type planInput struct {
	With          []string
	SluiceVersion string
	// Distribution and Components are --distribution and --components.
	Distribution, Components string
	Output                   string
	Race                     bool
	Cwd                      string
	// Self is where this sluice-build came from (see selfCore).
	Self selfInfo
}

// newPlan validates the command line and fills in defaults.
func newPlan(in planInput) (plan, error) {
	p := plan{Race: in.Race}
	var err error
	if p.Distribution, p.Components, err = selectComponents(in.Distribution, in.Components); err != nil {
		return p, err
	}
	var core *dep
	seen := map[string]bool{}
	for _, w := range in.With {
		d, err := parseWith(w, in.Cwd)
		if err != nil {
			return p, err
		}
		if seen[d.Module] {
			return p, fmt.Errorf("--with %q: module %s is named twice", w, d.Module)
		}
		seen[d.Module] = true
		if d.Module == coreModule {
			core = &d
			continue
		}
		p.Plugins = append(p.Plugins, d)
	}
	switch {
	case core != nil && in.SluiceVersion != "":
		return p, fmt.Errorf("--sluice-version %s and --with %s: choose one", in.SluiceVersion, core)
	case core != nil:
		p.Core = *core
	case in.SluiceVersion != "":
		if strings.ContainsAny(in.SluiceVersion, " \t=@") {
			return p, fmt.Errorf("--sluice-version %q: not a version", in.SluiceVersion)
		}
		p.Core = dep{Module: coreModule, Version: in.SluiceVersion}
	default:
		p.Core = in.Self.defaultCore()
	}

	out := in.Output
	if out == "" {
		return p, errors.New("-o: no output path")
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join(in.Cwd, out)
	}
	out = filepath.Clean(out)
	if info, err := os.Stat(filepath.Dir(out)); err != nil {
		return p, fmt.Errorf("-o %s: the directory does not exist: %w", in.Output, err)
	} else if !info.IsDir() {
		return p, fmt.Errorf("-o %s: %s is not a directory", in.Output, filepath.Dir(out))
	}
	if info, err := os.Stat(out); err == nil && info.IsDir() {
		return p, fmt.Errorf("-o %s: is a directory; name the binary (e.g. %s)", in.Output, filepath.Join(in.Output, "sluice"))
	}
	p.Output = out
	return p, nil
}

// selfInfo is what sluice-build knows about its own origin.
type selfInfo struct {
	// Version is the version of the module sluice-build was built from
	// (debug.ReadBuildInfo's Main.Version): a release or pseudo-version
	// after `go install ...@v1.2.0`, "(devel)" when built from a checkout.
	Version string
	// Checkout is the root of the Sluice checkout this sluice-build was
	// compiled from, when that is known and still there (`go run
	// ./cmd/sluice-build` in a checkout), or "".
	Checkout string
}

// defaultCore is the Sluice that goes in without --sluice-version: the
// same Sluice as this sluice-build. A released sluice-build builds its own
// release; one run from a checkout builds that checkout; otherwise the
// latest release, as xcaddy does.
func (s selfInfo) defaultCore() dep {
	switch {
	case s.Version != "" && s.Version != "(devel)":
		return dep{Module: coreModule, Version: s.Version}
	case s.Checkout != "":
		return dep{Module: coreModule, Dir: s.Checkout}
	default:
		return dep{Module: coreModule, Version: "latest"}
	}
}
