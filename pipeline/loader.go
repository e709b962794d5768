package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// agentRoot is the built-in reference root: agent.metrics is the agent's own
// registry.
const agentRoot = "agent"

// declaration is one top-level block of a config file.
type declaration struct {
	id    string
	typ   string
	name  string
	block *hcl.Block
	reg   Registration
	deps  []string // IDs this block references, in first-reference order
}

// LoadedNode is a block that has been decoded and validated.
type LoadedNode struct {
	ID   string
	Type string
	Reg  Registration
	Args Arguments
	// Eval is the evaluated block; equal Evals mean equal configuration.
	Eval cty.Value
	Deps []string
	// Files are the files the arguments refer to (FileReferrer).
	Files []string
	// Range is the block's header, for messages.
	Range hcl.Range

	body hcl.Body // for diagnostics that point at one attribute
}

// Graph is a loaded config: nodes in topological order (every node after the
// nodes it references).
type Graph struct {
	Nodes []*LoadedNode
	// Files are the files the config depends on besides itself: those read
	// with file() and those components refer to (FileReferrer).
	Files []string
}

// LoadOptions are what a config is checked against besides itself: facts
// about the agent that runs it.
type LoadOptions struct {
	// AllowEmpty accepts a config that declares no components. Without it
	// such a config is refused: an empty or comment-only file is far more
	// often a truncated write or a failed template render than a wish to
	// stop every component (--config.allow-empty).
	AllowEmpty bool
	// AgentListenAddress is the address of the agent's own HTTP server; a
	// component that wants to listen on it is refused at load time.
	AgentListenAddress string
}

// instantiateFunc returns the exports of a node that has just been decoded:
// the controller builds a new component, or hands back a running one's.
type instantiateFunc func(n *LoadedNode) (cty.Value, error)

// loadConfig parses, checks, orders and decodes a config. It stops at the
// first stage with errors, so one mistake does not cascade into many. It
// also returns every file the attempt depended on besides the config (read
// with file(), named by a component), whether or not it succeeded: a
// rejected config deserves another try when one of them changes.
func loadConfig(filename string, src []byte, lopts LoadOptions, lookupEnv LookupEnvFunc, agentExports cty.Value, inst instantiateFunc) (*Graph, []string, error) {
	parser := hclparse.NewParser()
	g, files, diags := loadWith(parser, filename, src, lopts, lookupEnv, agentExports, inst)
	if diags.HasErrors() {
		return nil, files, &DiagnosticsError{Diags: diags, Files: parser.Files(), Secrets: fileSecrets(parser, filename)}
	}
	return g, files, nil
}

// fileSecrets finds the secret attributes of every known block in the file,
// even when the file did not load, so that no diagnostic prints them.
func fileSecrets(parser *hclparse.Parser, filename string) []hcl.Range {
	f := parser.Files()[filename]
	if f == nil {
		return nil
	}
	sb, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	var out []hcl.Range
	for _, b := range sb.Blocks {
		if reg, ok := Lookup(b.Type); ok {
			out = append(out, secretRanges(b.Body, reflect.TypeOf(reg.Args))...)
		}
	}
	return out
}

func loadWith(parser *hclparse.Parser, filename string, src []byte, lopts LoadOptions, lookupEnv LookupEnvFunc, agentExports cty.Value, inst instantiateFunc) (*Graph, []string, hcl.Diagnostics) {
	decls, diags := parseDecls(parser, filename, src)
	if diags.HasErrors() {
		return nil, nil, diags
	}
	if len(decls) == 0 && !lopts.AllowEmpty {
		return nil, nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "No components in the config",
			Detail:   "The config declares no component, so applying it would stop everything. An empty or comment-only file is usually a truncated write or a failed template; if an agent without components is really intended, run with --config.allow-empty.",
			Subject:  &hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos},
		}}
	}
	order, diags := orderDecls(decls)
	if diags.HasErrors() {
		return nil, nil, diags
	}

	configDir := absDir(filename)
	var read []string
	funcs := functions(configDir, lookupEnv, func(p string) { read = append(read, p) })
	exports := map[string]cty.Value{} // id -> exports
	failed := map[string]bool{}
	g := &Graph{}
	for _, d := range order {
		skip := false
		for _, dep := range d.deps {
			if failed[dep] {
				skip = true // its own error is already reported
			}
		}
		if skip {
			failed[d.id] = true
			continue
		}
		ctx := &hcl.EvalContext{Variables: evalVars(d, exports, agentExports), Functions: funcs}
		n, referenced, ds := decodeDecl(d, ctx, configDir)
		read = append(read, referenced...)
		diags = append(diags, ds...)
		if ds.HasErrors() {
			failed[d.id] = true
			continue
		}
		ev, err := inst(n)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Failed to build component",
				Detail:   fmt.Sprintf("%s: %v", d.id, err),
				Subject:  d.block.DefRange.Ptr(),
			})
			failed[d.id] = true
			continue
		}
		exports[d.id] = ev
		g.Nodes = append(g.Nodes, n)
	}
	diags = append(diags, checkHTTPPaths(g.Nodes)...)
	diags = append(diags, checkListenAddresses(g.Nodes, lopts.AgentListenAddress)...)
	files := dedup(read)
	if diags.HasErrors() {
		return nil, files, diags
	}
	g.Files = files
	return g, files, diags
}

func dedup(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func parseDecls(parser *hclparse.Parser, filename string, src []byte) ([]*declaration, hcl.Diagnostics) {
	f, diags := parser.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	schema := &hcl.BodySchema{}
	for _, r := range Registrations() {
		schema.Blocks = append(schema.Blocks, hcl.BlockHeaderSchema{Type: r.Name, LabelNames: []string{"name"}})
	}
	content, ds := f.Body.Content(schema)
	diags = append(diags, ds...)

	var decls []*declaration
	byID := map[string]*declaration{}
	for _, b := range content.Blocks {
		reg, _ := Lookup(b.Type)
		d := &declaration{id: b.Type + "." + b.Labels[0], typ: b.Type, name: b.Labels[0], block: b, reg: reg}
		if !hclsyntax.ValidIdentifier(d.name) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid component name",
				Detail:   fmt.Sprintf("%q is not a valid name: use letters, digits, underscores and dashes, starting with a letter, so that %s.NAME can refer to it.", d.name, d.typ),
				Subject:  b.LabelRanges[0].Ptr(),
			})
			continue
		}
		if prev, dup := byID[d.id]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate component",
				Detail:   fmt.Sprintf("%s is already defined at %s; each component needs a unique name within its type.", d.id, prev.block.DefRange),
				Subject:  b.DefRange.Ptr(),
			})
			continue
		}
		byID[d.id] = d
		decls = append(decls, d)
	}
	if diags.HasErrors() {
		return nil, diags
	}

	// References: every variable in every expression of the block.
	for _, d := range decls {
		seen := map[string]bool{}
		for _, tr := range bodyVariables(d.block.Body) {
			root := tr.RootName()
			if root == agentRoot {
				continue // checked when evaluated: agent has one export
			}
			if _, ok := Lookup(root); !ok {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Unknown reference",
					Detail:   fmt.Sprintf("There is no component type or built-in named %q.%s", root, suggest(root, referenceRoots())),
					Subject:  tr.SourceRange().Ptr(),
				})
				continue
			}
			if len(tr) < 2 {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Incomplete reference",
					Detail:   fmt.Sprintf("Refer to a component as %s.NAME.EXPORT.", root),
					Subject:  tr.SourceRange().Ptr(),
				})
				continue
			}
			step, ok := tr[1].(hcl.TraverseAttr)
			if !ok {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid reference",
					Detail:   fmt.Sprintf("Refer to a component as %s.NAME.EXPORT.", root),
					Subject:  tr.SourceRange().Ptr(),
				})
				continue
			}
			id := root + "." + step.Name
			if _, ok := byID[id]; !ok {
				var ids []string
				for k := range byID {
					ids = append(ids, k)
				}
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Reference to undeclared component",
					Detail:   fmt.Sprintf("No component %s is declared in this file.%s", id, suggest(id, ids)),
					Subject:  tr.SourceRange().Ptr(),
				})
				continue
			}
			if !seen[id] {
				seen[id] = true
				d.deps = append(d.deps, id)
			}
		}
	}
	return decls, diags
}

// bodyVariables returns the traversals in every attribute of a native-syntax
// body, nested blocks included.
func bodyVariables(body hcl.Body) []hcl.Traversal {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	var out []hcl.Traversal
	names := make([]string, 0, len(sb.Attributes))
	for name := range sb.Attributes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		out = append(out, sb.Attributes[name].Expr.Variables()...)
	}
	for _, b := range sb.Blocks {
		out = append(out, bodyVariables(b.Body)...)
	}
	return out
}

func referenceRoots() []string {
	roots := []string{agentRoot}
	for _, r := range Registrations() {
		roots = append(roots, r.Name)
	}
	return roots
}

// suggest returns ` Did you mean "x"?` for the closest candidate, or "".
func suggest(given string, candidates []string) string {
	best, bestDist := "", 4
	for _, c := range candidates {
		if d := levenshtein.Distance(given, c, nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

// orderDecls sorts declarations topologically (stable in file order) and
// reports every cycle with all of its members.
func orderDecls(decls []*declaration) ([]*declaration, hcl.Diagnostics) {
	byID := map[string]*declaration{}
	for _, d := range decls {
		byID[d.id] = d
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var order []*declaration
	var diags hcl.Diagnostics
	var stack []string
	var visit func(d *declaration)
	visit = func(d *declaration) {
		color[d.id] = grey
		stack = append(stack, d.id)
		for _, dep := range d.deps {
			switch color[dep] {
			case white:
				visit(byID[dep])
			case grey:
				i := len(stack) - 1
				for stack[i] != dep {
					i--
				}
				cycle := append(append([]string{}, stack[i:]...), dep)
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Cycle in component references",
					Detail:   fmt.Sprintf("These components refer to each other in a loop: %s. Metrics must flow one way; remove one of the references.", strings.Join(cycle, " -> ")),
					Subject:  byID[dep].block.DefRange.Ptr(),
				})
			}
		}
		stack = stack[:len(stack)-1]
		color[d.id] = black
		order = append(order, d)
	}
	for _, d := range decls {
		if color[d.id] == white {
			visit(d)
		}
	}
	return order, diags
}

func evalVars(d *declaration, exports map[string]cty.Value, agentExports cty.Value) map[string]cty.Value {
	byType := map[string]map[string]cty.Value{}
	for _, dep := range d.deps {
		typ, name, _ := strings.Cut(dep, ".")
		if byType[typ] == nil {
			byType[typ] = map[string]cty.Value{}
		}
		byType[typ][name] = exports[dep]
	}
	vars := map[string]cty.Value{agentRoot: agentExports}
	for typ, m := range byType {
		vars[typ] = cty.ObjectVal(m)
	}
	return vars
}

// decodeDecl decodes one block. It also returns the files the block refers
// to (FileReferrer) when its arguments decoded but did not validate: a
// missing mapping file is then retried when it appears.
func decodeDecl(d *declaration, ctx *hcl.EvalContext, configDir string) (*LoadedNode, []string, hcl.Diagnostics) {
	args, eval, files, diags := decodeArgs(d.reg, d.block.Body, d.block.DefRange, ctx, configDir)
	if diags.HasErrors() {
		return nil, files, diags
	}
	n := &LoadedNode{ID: d.id, Type: d.typ, Reg: d.reg, Args: args, Eval: eval, Deps: d.deps, Range: d.block.DefRange, Files: files, body: d.block.Body}
	if len(n.Files) > 0 {
		// The files' content is part of the configuration.
		n.Eval = cty.TupleVal([]cty.Value{eval, cty.StringVal(filesHash(n.Files))})
	}
	return n, files, diags
}

// absDir is the absolute directory of a config file: relative paths in the
// config resolve against it, whatever the process's working directory.
func absDir(filename string) string {
	dir := filepath.Dir(filename)
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// argsPointer returns a pointer to a copy of args, so that optional
// interfaces implemented with value or pointer receivers both match.
func argsPointer(args Arguments) any {
	p := reflect.New(reflect.TypeOf(args))
	p.Elem().Set(reflect.ValueOf(args))
	return p.Interface()
}

// checkHTTPPaths refuses two components that mount the same path.
func checkHTTPPaths(nodes []*LoadedNode) hcl.Diagnostics {
	var diags hcl.Diagnostics
	owner := map[string]*LoadedNode{}
	for _, n := range nodes {
		u, ok := argsPointer(n.Args).(HTTPPathUser)
		if !ok {
			continue
		}
		for _, path := range u.HTTPPaths(n.ID) {
			if first, dup := owner[path]; dup {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "HTTP path used twice",
					Detail:   fmt.Sprintf("%s wants to serve %s, which %s (at %s) already serves; give one of them another path.", n.ID, path, first.ID, first.Range),
					Subject:  n.Range.Ptr(),
				})
				continue
			}
			owner[path] = n
		}
	}
	return diags
}

// filesHash fingerprints the content of files; a missing file hashes as
// such (Validate reports it).
func filesHash(paths []string) string {
	h := sha256.New()
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			b = []byte("unreadable: " + err.Error())
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(h, "%s\x00%x\n", p, sum)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// decodeArgs decodes a component's body into a new value of its Args type
// and validates it, returning also the files it refers to (FileReferrer).
func decodeArgs(reg Registration, body hcl.Body, def hcl.Range, ctx *hcl.EvalContext, configDir string) (Arguments, cty.Value, []string, hcl.Diagnostics) {
	target := reflect.New(reflect.TypeOf(reg.Args)).Elem()
	eval, diags := decodeBody(body, ctx, target)
	if diags.HasErrors() {
		return nil, cty.NilVal, nil, diags
	}
	if r, ok := target.Addr().Interface().(PathResolver); ok {
		r.ResolvePaths(configDir)
	}
	var files []string
	if fr, ok := target.Addr().Interface().(FileReferrer); ok {
		files = fr.ReferencedFiles()
	}
	if v, ok := target.Addr().Interface().(Validator); ok {
		diags = append(diags, validationDiags(v.Validate(), body, def)...)
		if diags.HasErrors() {
			return nil, cty.NilVal, files, diags
		}
	}
	return target.Interface(), eval, files, diags
}

// DecodeArguments decodes and validates a component body outside a config
// file: for tests and tools. vars are extra variables for expressions.
func DecodeArguments(reg Registration, body hcl.Body, configDir string, lookupEnv LookupEnvFunc, vars map[string]cty.Value) (Arguments, hcl.Diagnostics) {
	ctx := &hcl.EvalContext{Variables: vars, Functions: functions(configDir, lookupEnv, nil)}
	args, _, _, diags := decodeArgs(reg, body, body.MissingItemRange(), ctx, configDir)
	return args, diags
}
