// Package ui is the agent's status UI: an overview of the pipeline (graph,
// components and their health, the last reload with its diagnostics, build
// info) and a page per component (its configuration as written, exports,
// self-metrics and a preview of the series it exports).
//
// Pages are rendered on the server with html/template; the graph is an
// inline SVG laid out in Go (layout.go). A small script refreshes the live
// parts of a page: it polls a tiny JSON document (status.json) and fetches
// the page again only when something changed (the overview) or to update
// current values (a component page). Nothing runs when no browser is open.
//
// Everything shown that comes from the config or from components is
// redacted by the runtime package (controller_status.go) before it gets here.
package ui

import (
	"embed"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/version"

	"github.com/sluicehq/sluice/runtime"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the UI.
type Options struct {
	Controller *runtime.Controller
	// Base is the path under which a browser reaches the agent (the path
	// of --web.external-url), ending in "/"; every link starts with it.
	Base string
	// Distribution names the binary's set of components (full, lite, or
	// what sluice-build was told); shown with the version.
	Distribution string
	// Started is when the agent started (uptime).
	Started time.Time
	// Refresh is how often an open page checks for changes (default 5s).
	Refresh time.Duration
	// PreviewLimit bounds the series shown in a component's preview
	// (default 100, at most 1000).
	PreviewLimit int
	Logger       *slog.Logger
}

// MaxPreviewLimit bounds ?limit= on a component page.
const MaxPreviewLimit = 1000

// Handler serves the UI. Its paths are relative to the route prefix (the
// caller strips it): /, /component/<id>, /static/..., /status.json.
type Handler struct {
	o     Options
	pages lazyPages
	mux   *http.ServeMux
}

// lazyPages are the page templates, parsed when the first page is
// served: an agent whose UI nobody opens neither holds them nor runs the
// template parser (issue 22: a sidecar's idle memory).
type lazyPages struct {
	once   sync.Once
	parsed map[string]*template.Template
	err    error
}

func (l *lazyPages) get() (map[string]*template.Template, error) {
	l.once.Do(func() { l.parsed, l.err = parsePages() })
	return l.parsed, l.err
}

// uiPages are the pages, each its template and the layout.
var uiPages = []string{"overview", "component", "notfound"}

// parsePages parses every page's template.
func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"ago":        ago,
		"rfc3339":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"pathEscape": url.PathEscape,
		"mark":       func(v any) string { return healthMark(fmt.Sprint(v)) },
	}
	pages := make(map[string]*template.Template, len(uiPages))
	for _, page := range uiPages {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("parsing the %s template: %w", page, err)
		}
		pages[page] = t
	}
	return pages, nil
}

// New returns the UI handler.
func New(o Options) (*Handler, error) {
	if o.Base == "" {
		o.Base = "/"
	}
	if !strings.HasSuffix(o.Base, "/") {
		o.Base += "/"
	}
	if o.Refresh <= 0 {
		o.Refresh = 5 * time.Second
	}
	if o.PreviewLimit <= 0 {
		o.PreviewLimit = 100
	}
	o.PreviewLimit = min(o.PreviewLimit, MaxPreviewLimit)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Started.IsZero() {
		o.Started = time.Now()
	}
	h := &Handler{o: o}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.overview)
	mux.HandleFunc("GET /component/{id}", h.component)
	mux.HandleFunc("GET /status.json", h.status)
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		h.render(w, "notfound", h.page("Not found", nil))
	})
	h.mux = mux
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// cacheStatic lets browsers keep the embedded assets for an hour.
func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		next.ServeHTTP(w, r)
	})
}

// pageData is what every page's layout needs.
type pageData struct {
	Title   string
	Base    string
	Refresh int // seconds
	Stamp   string
	// Always: the page shows current values, refresh it at every tick
	// (not only when the pipeline changed).
	Always bool
	Data   any
}

func (h *Handler) page(title string, data any) pageData {
	return pageData{Title: title, Base: h.o.Base, Refresh: int(h.o.Refresh / time.Second), Stamp: h.stamp(), Data: data}
}

func (h *Handler) render(w http.ResponseWriter, page string, d pageData) {
	pages, err := h.pages.get()
	if err != nil { // the embedded templates are checked by TestPagesParse
		h.o.Logger.Error("the status UI's templates do not parse", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pages[page].Execute(w, d); err != nil {
		h.o.Logger.Debug("rendering a UI page", "page", page, "err", err) // the client left, usually
	}
}

// overviewData is the overview page.
type overviewData struct {
	Graph      template.HTML
	Components []componentRow
	Reload     *runtime.ReloadStatus
	Build      buildInfo
}

type componentRow struct {
	runtime.ComponentInfo
	Downstreams []string
}

type buildInfo struct {
	Version, Revision, Branch, BuildDate, GoVersion string
	Distribution                                    string
	Started                                         time.Time
	Uptime                                          string
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	comps := h.o.Controller.Components()
	downs := h.o.Controller.Downstreams()
	nodes := make([]GraphNode, 0, len(comps))
	rows := make([]componentRow, 0, len(comps))
	for _, c := range comps {
		nodes = append(nodes, GraphNode{ID: c.ID, Type: c.Type, Health: string(c.Health.State), Upstreams: c.Upstreams})
		rows = append(rows, componentRow{ComponentInfo: c, Downstreams: downs[c.ID]})
	}
	d := overviewData{
		Graph:      template.HTML(RenderGraph(nodes, h.o.Base)), // built with every text escaped
		Components: rows,
		Build: buildInfo{
			Version: version.Version, Revision: version.Revision, Branch: version.Branch, BuildDate: version.BuildDate,
			GoVersion: goruntime.Version(), Distribution: h.o.Distribution, Started: h.o.Started, Uptime: time.Since(h.o.Started).Truncate(time.Second).String(),
		},
	}
	if st, ok := h.o.Controller.LastReload(); ok {
		d.Reload = &st
	}
	h.render(w, "overview", h.page("Overview", d))
}

// componentData is a component page.
type componentData struct {
	runtime.ComponentDetail
	SelfMetrics []sample
	SelfError   string
	Previews    []preview
	Filter      string
	Limit       int
}

type preview struct {
	Export  string
	Series  []sample
	Matched int // series matching the filter
	Total   int
	Error   string
}

type sample struct {
	Series string
	Value  string
}

func (h *Handler) component(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	det, ok := h.o.Controller.ComponentDetail(id)
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		h.render(w, "notfound", h.page("Not found", "No running component is called "+strconv.Quote(id)+"."))
		return
	}
	filter := r.URL.Query().Get("filter")
	if len(filter) > 200 {
		filter = filter[:200]
	}
	limit := h.o.PreviewLimit
	if l, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && l > 0 {
		limit = min(l, MaxPreviewLimit)
	}
	d := componentData{ComponentDetail: det, Filter: filter, Limit: limit}
	if mfs, err := det.SelfMetrics.Gather(); err != nil {
		d.SelfError = runtime.RedactText(err.Error())
	} else {
		d.SelfMetrics, _, _ = samples(mfs, "", MaxPreviewLimit)
	}
	for _, g := range det.Metrics {
		p := preview{Export: g.Name}
		mfs, err := g.Gatherer.Gather()
		if err != nil {
			// A partial gather still has series worth showing.
			p.Error = runtime.RedactText(err.Error())
		}
		p.Series, p.Matched, p.Total = samples(mfs, filter, limit)
		d.Previews = append(d.Previews, p)
	}
	pd := h.page(id, d)
	pd.Always = true
	h.render(w, "component", pd)
}

// status is the document the page script polls: a stamp that changes when
// anything the overview shows changes (other than the uptime).
func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(struct {
		Stamp string `json:"stamp"`
	}{h.stamp()})
}

func (h *Handler) stamp() string {
	f := fnv.New64a()
	for _, c := range h.o.Controller.Components() {
		fmt.Fprintf(f, "%s\x00%s\x00%s\x00%s\x00%d\x00%d\x00%v\x00", c.ID, c.Type, c.Health.State, c.Health.Message,
			c.Health.Since.UnixNano(), c.LastUpdate.UnixNano(), c.Restarts)
		fmt.Fprintln(f, c.Upstreams)
	}
	if st, ok := h.o.Controller.LastReload(); ok {
		fmt.Fprintf(f, "reload\x00%d\x00%v", st.Time.UnixNano(), st.OK)
	}
	return strconv.FormatUint(f.Sum64(), 36)
}

// samples flattens metric families into series lines, keeps those whose
// text contains filter, and returns the first limit of them, how many
// matched and how many there are.
func samples(mfs []*dto.MetricFamily, filter string, limit int) (out []sample, matched, total int) {
	sort.Slice(mfs, func(i, j int) bool { return mfs[i].GetName() < mfs[j].GetName() })
	add := func(name string, labels []*dto.LabelPair, extra [][2]string, v float64) {
		total++
		if filter == "" { // no text needed beyond what is shown
			matched++
			if len(out) < limit {
				out = append(out, sample{Series: seriesString(name, labels, extra), Value: formatFloat(v)})
			}
			return
		}
		s := seriesString(name, labels, extra)
		if !strings.Contains(s, filter) {
			return
		}
		matched++
		if len(out) < limit {
			out = append(out, sample{Series: s, Value: formatFloat(v)})
		}
	}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			lp := m.GetLabel()
			switch {
			case m.Counter != nil:
				add(name, lp, nil, m.GetCounter().GetValue())
			case m.Gauge != nil:
				add(name, lp, nil, m.GetGauge().GetValue())
			case m.Untyped != nil:
				add(name, lp, nil, m.GetUntyped().GetValue())
			case m.Histogram != nil:
				hg := m.GetHistogram()
				for _, b := range hg.GetBucket() {
					add(name+"_bucket", lp, [][2]string{{"le", formatFloat(b.GetUpperBound())}}, float64(b.GetCumulativeCount()))
				}
				add(name+"_bucket", lp, [][2]string{{"le", "+Inf"}}, float64(hg.GetSampleCount()))
				add(name+"_sum", lp, nil, hg.GetSampleSum())
				add(name+"_count", lp, nil, float64(hg.GetSampleCount()))
			case m.Summary != nil:
				sm := m.GetSummary()
				for _, q := range sm.GetQuantile() {
					add(name, lp, [][2]string{{"quantile", formatFloat(q.GetQuantile())}}, q.GetValue())
				}
				add(name+"_sum", lp, nil, sm.GetSampleSum())
				add(name+"_count", lp, nil, float64(sm.GetSampleCount()))
			}
		}
	}
	return out, matched, total
}

func seriesString(name string, labels []*dto.LabelPair, extra [][2]string) string {
	if len(labels) == 0 && len(extra) == 0 {
		return name
	}
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	first := true
	write := func(k, v string) {
		if !first {
			b.WriteString(", ")
		}
		first = false
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(v))
	}
	for _, l := range labels {
		write(l.GetName(), l.GetValue())
	}
	for _, e := range extra {
		write(e[0], e[1])
	}
	b.WriteByte('}')
	return b.String()
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// ago renders how long ago t was, coarsely.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}
