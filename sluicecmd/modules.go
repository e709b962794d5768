package sluicecmd

import (
	"runtime/debug"
	"sort"
	"strings"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runtime"
)

// coreModule is Sluice's own module: its components are "standard", those
// of every other module are "plugin"s.
const coreModule = "github.com/sluicehq/sluice"

// registrationPackage is the Go package that registered a component. It is
// the one place that knows how to get it from a registration.
func registrationPackage(r pipeline.ComponentType) string { return r.PackagePath() }

// moduleVersion is what a binary knows about the module a package came from.
type moduleVersion struct {
	Path    string // "" when unknown (no build information)
	Version string // v1.2.0, a pseudo-version, or (devel) for the main module
	Replace string // the replacement's path (and version, if a module), or ""
}

// String is "PATH VERSION" or "PATH VERSION => REPLACEMENT".
func (m moduleVersion) String() string {
	if m.Path == "" {
		return "unknown"
	}
	s := m.Path + " " + m.Version
	if m.Replace != "" {
		s += " => " + m.Replace
	}
	return s
}

// versionString is the version, followed by " => REPLACEMENT" if replaced.
func (m moduleVersion) versionString() string {
	if m.Replace != "" {
		return m.Version + " => " + m.Replace
	}
	return m.Version
}

// buildInfo is debug.ReadBuildInfo; a variable for tests.
var buildInfo = debug.ReadBuildInfo

// moduleOf finds the module that contains package pkg: the longest module
// path among bi.Main and bi.Deps that is pkg or a prefix of it followed by
// "/" (github.com/sluicehq/sluice/plugins/exec, a module of its own, is not
// part of github.com/sluicehq/sluice).
func moduleOf(bi *debug.BuildInfo, pkg string) moduleVersion {
	var best moduleVersion
	if bi == nil {
		return best
	}
	mods := append([]*debug.Module{&bi.Main}, bi.Deps...)
	for _, m := range mods {
		if m == nil || m.Path == "" || len(m.Path) <= len(best.Path) {
			continue
		}
		if pkg != m.Path && !strings.HasPrefix(pkg, m.Path+"/") {
			continue
		}
		best = moduleVersion{Path: m.Path, Version: m.Version}
		if m.Replace != nil {
			best.Replace = m.Replace.Path
			if v := m.Replace.Version; v != "" && v != "(devel)" { // a directory has no version
				best.Replace += " " + m.Replace.Version
			}
		}
	}
	return best
}

// kindOf is "standard" for a component of Sluice's own module and "plugin"
// for any other. Without build information (a binary built outside module
// mode) it falls back to the package path.
func kindOf(mod moduleVersion, pkg string) string {
	if mod.Path == coreModule || mod.Path == "" && strings.HasPrefix(pkg, coreModule+"/components/") {
		return "standard"
	}
	return "plugin"
}

// describeComponents documents regs, with each one's module, version and
// kind taken from the binary's build information.
func describeComponents(regs []pipeline.ComponentType, bi *debug.BuildInfo) []runtime.ComponentDoc {
	docs := make([]runtime.ComponentDoc, 0, len(regs))
	for _, r := range regs {
		d := runtime.Describe(r)
		pkg := registrationPackage(r)
		mod := moduleOf(bi, pkg)
		d.Package, d.Module, d.Version, d.Kind = pkg, mod.Path, mod.versionString(), kindOf(mod, pkg)
		docs = append(docs, d)
	}
	return docs
}

// pluginModule is a module other than Sluice's that registers components.
type pluginModule struct {
	moduleVersion
	Components []string
}

// pluginModules groups the plugin components of docs by module, sorted by
// module path.
func pluginModules(docs []runtime.ComponentDoc, bi *debug.BuildInfo) []pluginModule {
	byPath := map[string]*pluginModule{}
	var out []*pluginModule
	for _, d := range docs {
		if d.Kind != "plugin" {
			continue
		}
		mod := moduleOf(bi, d.Package)
		key := mod.Path
		if key == "" {
			key = d.Package
		}
		pm, ok := byPath[key]
		if !ok {
			pm = &pluginModule{moduleVersion: mod}
			if mod.Path == "" {
				pm.Path, pm.Version = d.Package, "unknown"
			}
			byPath[key] = pm
			out = append(out, pm)
		}
		pm.Components = append(pm.Components, d.Name)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	res := make([]pluginModule, len(out))
	for i, pm := range out {
		res[i] = *pm
	}
	return res
}
