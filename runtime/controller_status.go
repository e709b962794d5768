package runtime

// The controller's read-only views, and the bookkeeping behind them: its
// readiness, the running components and their health (/api/v0/components,
// the agent's /metrics), the watched files, and for the status UI
// (runtime/ui) the last reload with its diagnostics and one component's
// configuration, exports and self-metrics. controller.go changes the
// running graph; this file reads it, and records what the views show of
// each load (noteReload, noteConfig). Everything that comes from the config source
// or from component messages is redacted here, with the same rules as
// rendered diagnostics (redact.go), so the UI cannot forget to.

import (
	"bufio"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/zclconf/go-cty/cty"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
)

// ReloadStatus is the outcome of the last attempt to load the config (a
// file change, SIGHUP, POST /-/reload or a re-evaluation after an exports
// change).
type ReloadStatus struct {
	Time time.Time `json:"time"`
	// Trigger is "load" for a config load, "re-evaluation" for an exports
	// change.
	Trigger string `json:"trigger"`
	// OK is true when the config was accepted (it may still have Error,
	// when a removed component did not stop in time).
	OK bool `json:"ok"`
	// Error is the redacted error text, "" on success.
	Error string `json:"error,omitempty"`
	// Diagnostics are the structured, redacted diagnostics of a rejected
	// config.
	Diagnostics []DiagnosticItem `json:"diagnostics,omitempty"`
}

// DiagnosticItem is one redacted diagnostic.
type DiagnosticItem struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail,omitempty"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
	// Snippet is the subject's source line with the range underlined,
	// secrets redacted (as in the rendered error).
	Snippet string `json:"snippet,omitempty"`
}

// Items returns the diagnostics as structured items, redacted exactly as
// Error renders them.
func (e *DiagnosticsError) Items() []DiagnosticItem {
	r := e.redactor()
	out := make([]DiagnosticItem, 0, len(e.Diags))
	for _, d := range e.Diags {
		it := DiagnosticItem{Severity: "error", Summary: r.text(d.Summary), Detail: r.text(d.Detail)}
		if d.Severity == hcl.DiagWarning {
			it.Severity = "warning"
		}
		if d.Subject != nil {
			it.File, it.Line, it.Column = d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column
			if f := e.Files[d.Subject.Filename]; f != nil {
				var b strings.Builder
				writeSnippet(&b, f.Bytes, *d.Subject, r.secrets[d.Subject.Filename].hideFrom)
				it.Snippet = r.text(strings.TrimLeft(b.String(), "\n"))
			}
		}
		out = append(out, it)
	}
	return out
}

// statusState is what the controller keeps for its status views. Its
// fields are swapped whole, so readers never wait for a reload.
type statusState struct {
	lastReload atomic.Pointer[ReloadStatus]
	config     atomic.Pointer[configSnapshot]
}

// configSnapshot is the source of the running config: its parsed files
// (immutable once parsed) and where each block is.
type configSnapshot struct {
	files   map[string]*hcl.File
	secrets []hcl.Range
	blocks  map[string]hcl.Range
}

// noteReload records the outcome of a load or a re-evaluation.
func (c *Controller) noteReload(trigger string, err error) {
	if errors.Is(err, ErrStopped) {
		return
	}
	st := &ReloadStatus{Time: c.now(), Trigger: trigger, OK: true}
	var de *DiagnosticsError
	var ae *ApplyError
	switch {
	case err == nil:
	case errors.As(err, &ae):
		st.Error = ae.Error()
	case errors.As(err, &de):
		st.OK = false
		st.Error = "config not applied; the running pipeline is unchanged"
		st.Diagnostics = de.Items()
	default:
		st.OK = false
		st.Error = RedactText(err.Error())
	}
	c.status.lastReload.Store(st)
}

// noteReevaluation records a re-evaluation's outcome: a failure always, a
// success only if it clears a failed re-evaluation (an exports change that
// needs nothing is not worth reporting as a reload).
func (c *Controller) noteReevaluation(err error) {
	if err == nil {
		if last := c.status.lastReload.Load(); last == nil || last.OK || last.Trigger != "re-evaluation" {
			return
		}
	}
	c.noteReload("re-evaluation", err)
}

// noteConfig keeps the source of an accepted config. Called with applyMu.
func (c *Controller) noteConfig(g *graph) {
	snap := &configSnapshot{files: g.parsed.hclFiles, secrets: g.parsed.secrets, blocks: map[string]hcl.Range{}}
	for _, d := range g.decls {
		r := d.block.DefRange
		if sb, ok := d.block.Body.(*hclsyntax.Body); ok {
			r = hcl.RangeBetween(d.block.DefRange, sb.SrcRange)
		}
		snap.blocks[d.id] = r
	}
	c.status.config.Store(snap)
}

// LastReload returns the outcome of the last load attempt, if any.
func (c *Controller) LastReload() (ReloadStatus, bool) {
	if st := c.status.lastReload.Load(); st != nil {
		return *st, true
	}
	return ReloadStatus{}, false
}

// ComponentDetail is everything the status UI shows about one component.
type ComponentDetail struct {
	ComponentInfo
	// Downstreams are the components that reference this one.
	Downstreams []string
	// Config is the component's block as written in the config file, with
	// secrets redacted; ConfigFile and ConfigLine say where it starts.
	Config     string
	ConfigFile string
	ConfigLine int
	// Exports are the exported values, rendered as HCL-like text.
	Exports []ExportItem
	// Metrics are the gatherers among the exports (usually "metrics").
	Metrics []NamedGatherer
	// SelfMetrics gathers the component's own self-metrics.
	SelfMetrics prometheus.Gatherer
}

// ExportItem is one rendered export.
type ExportItem struct {
	Name  string
	Value string
}

// NamedGatherer is an exported gatherer and its export name.
type NamedGatherer struct {
	Name     string
	Gatherer prometheus.Gatherer
}

// Downstreams maps every running component to those that reference it.
func (c *Controller) Downstreams() map[string][]string {
	c.mu.RLock()
	nodes, order := c.nodes, c.order
	c.mu.RUnlock()
	out := map[string][]string{}
	for _, id := range order {
		n := nodes[id]
		n.mu.Lock()
		deps := slices.Clone(n.deps)
		n.mu.Unlock()
		for _, d := range deps {
			if nodes[d] != nil && !slices.Contains(out[d], id) {
				out[d] = append(out[d], id)
			}
		}
	}
	return out
}

// ComponentDetail returns what the status UI shows of a running component.
func (c *Controller) ComponentDetail(id string) (ComponentDetail, bool) {
	var info *ComponentInfo
	for _, ci := range c.Components() {
		if ci.ID == id {
			info = &ci
			break
		}
	}
	c.mu.RLock()
	n := c.nodes[id]
	c.mu.RUnlock()
	if info == nil || n == nil {
		return ComponentDetail{}, false
	}
	d := ComponentDetail{ComponentInfo: *info, Downstreams: c.Downstreams()[id], SelfMetrics: n.selfReg}
	if d.Downstreams == nil {
		d.Downstreams = []string{}
	}
	if snap := c.status.config.Load(); snap != nil {
		if r, ok := snap.blocks[id]; ok {
			d.Config, d.ConfigFile, d.ConfigLine = snap.blockSource(r), r.Filename, r.Start.Line
		}
	}
	n.mu.Lock()
	exports, ev := n.exports, n.exportsVal
	n.mu.Unlock()
	if ev.Type().IsObjectType() {
		names := make([]string, 0, len(ev.Type().AttributeTypes()))
		for name := range ev.Type().AttributeTypes() {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			d.Exports = append(d.Exports, ExportItem{Name: name, Value: RedactText(formatValue(ev.GetAttr(name)))})
		}
	}
	d.Metrics = exportedGatherers(exports)
	return d, true
}

// exportedGatherers finds the prometheus.Gatherer fields of an Exports
// struct.
func exportedGatherers(exports any) []NamedGatherer {
	v := reflect.ValueOf(exports)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	fields, err := schema.Fields(v.Type())
	if err != nil {
		return nil
	}
	var out []NamedGatherer
	for _, f := range fields {
		fv := v.Field(f.Index)
		if f.Type == schema.GathererType && !fv.IsNil() {
			out = append(out, NamedGatherer{Name: f.Name, Gatherer: fv.Interface().(prometheus.Gatherer)})
		}
	}
	return out
}

// formatValue renders an export value as HCL-like text.
func formatValue(v cty.Value) string {
	switch {
	case v.IsNull():
		return "null"
	case !v.IsKnown():
		return "(unknown)"
	case v.Type() == schema.CtyGatherer:
		return "(metrics)"
	case v.Type() == cty.String:
		return fmt.Sprintf("%q", v.AsString())
	case v.Type() == cty.Number:
		return v.AsBigFloat().Text('g', -1)
	case v.Type() == cty.Bool:
		if v.True() {
			return "true"
		}
		return "false"
	case v.Type().IsTupleType() || v.Type().IsListType() || v.Type().IsSetType():
		var parts []string
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			parts = append(parts, formatValue(e))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case v.Type().IsObjectType() || v.Type().IsMapType():
		var parts []string
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			parts = append(parts, fmt.Sprintf("%q = %s", k.AsString(), formatValue(e)))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return v.GoString()
}

// blockSource returns the lines of the block at r, with the values of
// secret attributes replaced by <redacted> (as in diagnostics' snippets).
func (s *configSnapshot) blockSource(r hcl.Range) string {
	f := s.files[r.Filename]
	if f == nil {
		return ""
	}
	red := (&DiagnosticsError{Files: map[string]*hcl.File{r.Filename: f}, Secrets: s.secrets}).redactor()
	hide := red.secrets[r.Filename].hideFrom
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(f.Bytes)))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for line := 1; sc.Scan() && line <= r.End.Line; line++ {
		if line < r.Start.Line {
			continue
		}
		text := sc.Text()
		if from, ok := hide[line]; ok {
			from = min(from, len(text))
			sep := ""
			if from > 0 {
				sep = " "
			}
			text = text[:from] + sep + redactedMark
		}
		b.WriteString(text)
		b.WriteByte('\n')
	}
	return red.text(b.String())
}

// Gatherer returns the agent's own metrics, those of every component
// included: what /metrics serves and agent.metrics exports.
func (c *Controller) Gatherer() prometheus.Gatherer { return c.agentGatherer }

// Ready reports whether the agent is serving: see Readiness.
func (c *Controller) Ready() bool {
	ok, _ := c.Readiness()
	return ok
}

// Readiness reports whether the agent is ready, and why not: a config has
// been applied and no component is failing to start (its Run fails without
// ever staying up, such as a socket that cannot be bound, or fails twice in
// a row; see node.failing), and every component that serves something of
// its own (a ReadinessReporter) serves it. A component that reports itself unhealthy (a
// database that is down) does not make the agent unready: the agent still serves what it has, and taking it
// out of a load balancer would lose the rest.
func (c *Controller) Readiness() (bool, string) {
	c.mu.RLock()
	ready := c.ready
	c.mu.RUnlock()
	if !ready {
		return false, "no config applied yet"
	}
	var failing, waiting []string
	for _, n := range c.liveNodes() {
		if msg, bad := n.failing(); bad {
			failing = append(failing, n.id+": "+RedactText(msg))
			continue
		}
		if rr, ok := n.inst.Component().(ReadinessReporter); ok {
			if ok, why := rr.Ready(); !ok {
				waiting = append(waiting, n.id+": "+RedactText(why))
			}
		}
	}
	var why []string
	if len(failing) > 0 {
		why = append(why, "components failing to start: "+strings.Join(failing, "; "))
	}
	if len(waiting) > 0 {
		why = append(why, "components not serving yet: "+strings.Join(waiting, "; "))
	}
	if len(why) > 0 {
		return false, strings.Join(why, "; ")
	}
	return true, ""
}

// WatchedFiles returns the files whose change may change what the config
// loads to: the config file, the files it read with file() and those its
// components refer to (for a rejected config, those it tried to use and
// those of the running one).
func (c *Controller) WatchedFiles() []string {
	if p := c.watched.Load(); p != nil {
		return *p
	}
	return nil
}

// ComponentInfo describes one component for /api/v0/components.
type ComponentInfo struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Health     Health    `json:"health"`
	LastUpdate time.Time `json:"last_update"`
	Restarts   uint64    `json:"restarts"`
	Upstreams  []string  `json:"upstreams"`
}

// Components lists the running components in topological order.
func (c *Controller) Components() []ComponentInfo {
	c.mu.RLock()
	nodes, order := c.nodes, c.order
	c.mu.RUnlock()
	out := make([]ComponentInfo, 0, len(order))
	for _, id := range order {
		n := nodes[id]
		n.mu.Lock()
		lu := n.lastUpdate
		ups := slices.Clone(n.deps)
		n.mu.Unlock()
		if ups == nil {
			ups = []string{}
		}
		h := n.health()
		h.Message = RedactText(h.Message) // components may quote their arguments
		out = append(out, ComponentInfo{ID: id, Type: n.typ, Health: h, LastUpdate: lu, Restarts: n.restarts.Load(), Upstreams: ups})
	}
	return out
}

// ComponentHealth implements HealthView for components (Options.Health):
// the health Components reports, by ID.
func (c *Controller) ComponentHealth() map[string]Health {
	infos := c.Components()
	out := make(map[string]Health, len(infos))
	for _, ci := range infos {
		out[ci.ID] = ci.Health
	}
	return out
}

func (c *Controller) liveNodes() []*node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*node, 0, len(c.nodes))
	for _, n := range c.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// gatherComponents merges every live component's self-metrics.
func (c *Controller) gatherComponents() ([]*dto.MetricFamily, error) {
	nodes := c.liveNodes()
	gs := make(prometheus.Gatherers, 0, len(nodes))
	for _, n := range nodes {
		gs = append(gs, n.selfReg)
	}
	return gs.Gather()
}

// componentCollector reports health and restarts of the live components,
// so removed components leave no stale series.
type componentCollector struct{ c *Controller }

var (
	healthDesc = prometheus.NewDesc("sluice_component_health",
		"Health of each component: 1 for its current state, 0 for the others.", []string{"component_id", "state"}, nil)
	restartsDesc = prometheus.NewDesc("sluice_component_restarts_total",
		"Times a component was restarted after its Run failed.", []string{"component_id"}, nil)
)

func (cc componentCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- healthDesc
	ch <- restartsDesc
}

func (cc componentCollector) Collect(ch chan<- prometheus.Metric) {
	for _, n := range cc.c.liveNodes() {
		h := n.health()
		for _, s := range pipeline.HealthStates() {
			v := 0.0
			if s == h.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(healthDesc, prometheus.GaugeValue, v, n.id, string(s))
		}
		ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(n.restarts.Load()), n.id)
	}
}
