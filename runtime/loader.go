package runtime

// Loading a config: parse, check the schema, find references, order the
// blocks so that every block comes after those it references, and then,
// block by block, decode, validate, provision and build (or keep the
// running component). The loader stops at the first stage with errors, so
// one mistake does not cascade into many.

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
)

// agentRoot is the built-in reference root: agent.metrics is the agent's own
// registry.
const agentRoot = "agent"

// declaration is one top-level block of a config file, parsed. The
// controller keeps the declarations of the running config, so that an
// export change re-evaluates the blocks that depend on it without parsing
// the file again.
type declaration struct {
	id    string
	typ   string
	name  string
	block *hcl.Block
	ct    ComponentType
	deps  []string // IDs this block references, in first-reference order
}

// loadedNode is a block that has been decoded, validated and provisioned.
type loadedNode struct {
	id   string
	ct   ComponentType
	args any
	// eval is the evaluated block, with the fingerprint of its files;
	// equal evals mean equal configuration.
	eval cty.Value
	deps []string
	// files are the files the arguments refer to (FileReferrer), and
	// filesHash their fingerprint.
	files     []string
	filesHash string
	// unchanged is set when the block evaluates as the running
	// component's (which keeps its arguments).
	unchanged bool
	// rng is the block's header, for messages, and body its body, for
	// diagnostics that point at one attribute.
	rng  hcl.Range
	body hcl.Body
}

// graph is a loaded config: nodes and declarations in topological order
// (every node after the nodes it references).
type graph struct {
	nodes []*loadedNode
	decls []*declaration
	// files are the files the config depends on besides itself: those read
	// with file() and those components refer to (FileReferrer).
	files []string
	// parsed renders diagnostics about this config later (a failed
	// Update, a failed re-evaluation).
	parsed *parsedConfig
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
	// AgentProbeListenAddress is the agent's plain-HTTP probe listener
	// (--web.probe-listen-address), if any: refused to components too.
	AgentProbeListenAddress string
}

// priorNode is what the loader needs to know of a running component.
type priorNode struct {
	eval      cty.Value
	args      any
	files     []string
	filesHash string
}

// loader is one load of a config, or one re-evaluation of some of its
// blocks.
type loader struct {
	opts         LoadOptions
	configDir    string
	lookupEnv    LookupEnvFunc
	agentExports cty.Value
	files        *fileCache
	logger       *slog.Logger
	// prior returns the running component of an ID, if any: a block whose
	// evaluation equals the running one keeps its (provisioned) arguments.
	prior func(id string) (priorNode, bool)
	// trustFiles reuses the running component's files fingerprint when it
	// names the same files (re-evaluation after an export change: a file
	// change triggers a reload of its own).
	trustFiles bool
	// inst returns the exports of a node that has just been loaded: the
	// controller builds a new component, or hands back a running one's.
	inst func(n *loadedNode) (cty.Value, error)

	funcs map[string]function.Function
	// read are the files the load depends on besides the config: read with
	// file(), or named by a component (FileReferrer), including those of
	// blocks that did not validate (a missing mapping file: creating it is
	// worth another try).
	read []string
}

func (l *loader) init() {
	l.funcs = functions(l.configDir, l.lookupEnv, l.files.ReadFile, func(p string) { l.read = append(l.read, p) })
}

// load parses, checks, orders and loads a config. It also returns every
// file the attempt depended on besides the config, whether or not it
// succeeded: a rejected config deserves another try when one of them
// changes.
func (l *loader) load(s *source) (*graph, []string, error) {
	p := s.parse()
	g, diags := l.loadWith(p, s.filename)
	files := dedup(l.read)
	if diags.HasErrors() {
		return nil, files, p.diagnosticsError(diags)
	}
	g.files = files
	g.parsed = p
	return g, files, nil
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

func (l *loader) loadWith(p *parsedConfig, filename string) (*graph, hcl.Diagnostics) {
	decls, diags := parseDecls(p)
	if diags.HasErrors() {
		return nil, diags
	}
	if len(decls) == 0 && !l.opts.AllowEmpty {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "No components in the config",
			Detail:   "The config declares no component, so applying it would stop everything. An empty or comment-only file is usually a truncated write or a failed template; if an agent without components is really intended, run with --config.allow-empty.",
			Subject:  &hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos},
		}}
	}
	order, diags := orderDecls(decls)
	if diags.HasErrors() {
		return nil, diags
	}

	l.init()
	exports := map[string]cty.Value{} // id -> exports
	failed := map[string]bool{}
	g := &graph{decls: order}
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
		n, ds := l.evalDecl(d, exports)
		diags = append(diags, ds...)
		if ds.HasErrors() {
			failed[d.id] = true
			continue
		}
		ev, err := l.inst(n)
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
		g.nodes = append(g.nodes, n)
	}
	diags = append(diags, checkHTTPPaths(g.nodes)...)
	diags = append(diags, checkListenAddresses(g.nodes, l.opts)...)
	if diags.HasErrors() {
		return nil, diags
	}
	return g, diags
}

func parseDecls(p *parsedConfig) ([]*declaration, hcl.Diagnostics) {
	f, diags := p.file, slices.Clone(p.diags) // appended to below; the parse is shared
	if diags.HasErrors() {
		return nil, diags
	}
	schema := &hcl.BodySchema{}
	for _, r := range pipeline.Registrations() {
		schema.Blocks = append(schema.Blocks, hcl.BlockHeaderSchema{Type: r.Name, LabelNames: []string{"name"}})
	}
	content, ds := f.Body.Content(schema)
	for _, d := range ds {
		if d.Summary == "Unsupported block type" {
			// A binary may have a subset of the standard components (the
			// lite distribution, a sluice-build --components selection).
			d.Detail += " This binary has no component of that type: sluice components lists those it has."
		}
	}
	diags = append(diags, ds...)

	var decls []*declaration
	byID := map[string]*declaration{}
	for _, b := range content.Blocks {
		ct, _ := pipeline.Lookup(b.Type)
		d := &declaration{id: b.Type + "." + b.Labels[0], typ: b.Type, name: b.Labels[0], block: b, ct: ct}
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
		for _, tr := range bodyVariables(d.block.Body, d.ct.ArgsType()) {
			root := tr.RootName()
			if root == agentRoot {
				continue // checked when evaluated: agent has one export
			}
			if _, ok := pipeline.Lookup(root); !ok {
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
// body of struct type t, nested blocks included, except in attributes kept
// unevaluated (hcl.Expression fields): their variables are the component's
// to provide, not references to other components.
func bodyVariables(body hcl.Body, t reflect.Type) []hcl.Traversal {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	exprs := map[string]bool{}
	blocks := map[string]reflect.Type{}
	if t != nil {
		fields, _ := schema.Fields(t)
		for _, f := range fields {
			switch {
			case f.Kind == schema.KindAttr && f.Type == schema.ExprType:
				exprs[f.Name] = true
			case f.Kind == schema.KindBlock:
				blocks[f.Name] = schema.BlockElem(f.Type)
			}
		}
	}
	var out []hcl.Traversal
	names := make([]string, 0, len(sb.Attributes))
	for name := range sb.Attributes {
		if !exprs[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		out = append(out, sb.Attributes[name].Expr.Variables()...)
	}
	for _, b := range sb.Blocks {
		out = append(out, bodyVariables(b.Body, blocks[b.Type])...)
	}
	return out
}

func referenceRoots() []string {
	roots := []string{agentRoot}
	for _, r := range pipeline.Registrations() {
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

// evalDecl evaluates one block against the exports of the blocks it
// references: decode, ResolvePaths, Validate, the fingerprint of its files
// and, unless it equals the running component's, Provision.
func (l *loader) evalDecl(d *declaration, exports map[string]cty.Value) (*loadedNode, hcl.Diagnostics) {
	ctx := &hcl.EvalContext{Variables: evalVars(d, exports, l.agentExports), Functions: l.funcs}
	body, def := d.block.Body, d.block.DefRange
	target := reflect.New(d.ct.ArgsType()).Elem()
	eval, diags := decodeResolved(target, body, ctx, l.configDir)
	if diags.HasErrors() {
		return nil, diags
	}
	n := &loadedNode{id: d.id, ct: d.ct, eval: eval, deps: d.deps, rng: def, body: body}
	// The files are worth watching even if Validate refuses them (a
	// missing mapping file: creating it is worth another try).
	if fr, ok := target.Addr().Interface().(FileReferrer); ok {
		n.files = fr.ReferencedFiles()
		l.read = append(l.read, n.files...)
	}
	if diags = append(diags, validateArgs(target, body, def)...); diags.HasErrors() {
		return nil, diags
	}
	prior, hasPrior := l.prior(d.id)
	if len(n.files) > 0 {
		if l.trustFiles && hasPrior && slices.Equal(prior.files, n.files) {
			n.filesHash = prior.filesHash
		} else {
			n.filesHash = l.files.filesHash(n.files)
		}
		// The files' content is part of the configuration.
		n.eval = cty.TupleVal([]cty.Value{eval, cty.StringVal(n.filesHash)})
	}
	if hasPrior && prior.eval.RawEquals(n.eval) {
		// Unchanged: keep the running arguments, provisioned already.
		n.args, n.unchanged = prior.args, true
		return n, diags
	}
	diags = append(diags, provision(target, body, def, provisionContext{
		configDir: l.configDir, files: l.files, logger: l.logger.With("component_id", d.id),
	})...)
	if diags.HasErrors() {
		return nil, diags
	}
	n.args = target.Interface()
	return n, diags
}

// decodeArgs decodes a component's body into target (an addressable value
// of its Arguments type), resolves its paths and validates it: what the
// loader does for every block (evalDecl, which also notes the files in
// between), for tools and tests (DecodeArguments).
func decodeArgs(target reflect.Value, body hcl.Body, def hcl.Range, ctx *hcl.EvalContext, configDir string) (cty.Value, hcl.Diagnostics) {
	eval, diags := decodeResolved(target, body, ctx, configDir)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	return eval, append(diags, validateArgs(target, body, def)...)
}

// decodeResolved decodes body into target and resolves its paths
// (PathResolver, top level only).
func decodeResolved(target reflect.Value, body hcl.Body, ctx *hcl.EvalContext, configDir string) (cty.Value, hcl.Diagnostics) {
	eval, diags := decodeBody(body, ctx, target)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if r, ok := target.Addr().Interface().(PathResolver); ok {
		r.ResolvePaths(configDir)
	}
	return eval, diags
}

// validateArgs runs the top-level Arguments' Validate (nested blocks'
// ran while decoding).
func validateArgs(target reflect.Value, body hcl.Body, def hcl.Range) hcl.Diagnostics {
	v, ok := target.Addr().Interface().(Validator)
	if !ok {
		return nil
	}
	return validationDiags(v.Validate(), body, def)
}

// provision runs the Arguments' Provision, if it has one.
func provision(target reflect.Value, body hcl.Body, def hcl.Range, pc provisionContext) hcl.Diagnostics {
	p, ok := target.Addr().Interface().(Provisioner)
	if !ok {
		return nil
	}
	return validationDiags(p.Provision(pc), body, def)
}

// provisionContext implements ProvisionContext.
type provisionContext struct {
	configDir string
	files     *fileCache
	logger    *slog.Logger
}

func (p provisionContext) ConfigDir() string                    { return p.configDir }
func (p provisionContext) ReadFile(path string) ([]byte, error) { return p.files.ReadFile(path) }
func (p provisionContext) Logger() *slog.Logger                 { return p.logger }

// absDir is the absolute directory of a config file: relative paths in the
// config resolve against it, whatever the process's working directory.
func absDir(filename string) string {
	dir := filepath.Dir(filename)
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// argsAs returns args (a value of an Arguments type) as the optional
// interface T, whether the type implements it on the value or the pointer.
func argsAs[T any](args any) (T, bool) {
	p := reflect.New(reflect.TypeOf(args))
	p.Elem().Set(reflect.ValueOf(args))
	t, ok := p.Interface().(T)
	return t, ok
}

// DecodeArguments decodes, validates and provisions a component body
// outside a config file, for tests and tools: it returns a value of the
// component's Arguments type, ready for ComponentType.Build or
// Instance.Update. vars are extra variables for expressions. Files are
// read through a cache of this call.
func DecodeArguments(ct ComponentType, body hcl.Body, configDir string, lookupEnv LookupEnvFunc, vars map[string]cty.Value) (any, hcl.Diagnostics) {
	files := newFileCache(nil)
	ctx := &hcl.EvalContext{Variables: vars, Functions: functions(configDir, lookupEnv, files.ReadFile, nil)}
	target := reflect.New(ct.ArgsType()).Elem()
	def := body.MissingItemRange()
	_, diags := decodeArgs(target, body, def, ctx, configDir)
	if diags.HasErrors() {
		return nil, diags
	}
	diags = append(diags, provision(target, body, def, provisionContext{
		configDir: configDir, files: files, logger: slog.New(slog.DiscardHandler),
	})...)
	if diags.HasErrors() {
		return nil, diags
	}
	return target.Interface(), diags
}
