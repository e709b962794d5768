// Package sink implements the metrics_sink component: it serves the merged
// metric families of its inputs over HTTP, for Prometheus to scrape.
package sink

import (
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/internal/scrapelimit"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/web"
	"github.com/sluicehq/sluice/ratelog"
)

func init() {
	pipeline.Register(pipeline.Registration[Arguments, Exports]{
		Name:      "metrics_sink",
		Stability: pipeline.StabilityBeta,
		Summary:   "serves the merged metrics of its inputs for Prometheus to scrape (text and OpenMetrics, gzip)",
		Build:     Build,
		Example: `metrics_sink "default" {
  inputs = [relabel.app.metrics, postgres_source.db.metrics]
  path   = "/metrics/app"        # on the agent's server; or listen = ":9102"

  const_labels = { node = env("NODE_NAME") }
}`,
	})
}

// Arguments configures a metrics_sink.
type Arguments struct {
	// Inputs are merged, by family name, in this order.
	Inputs []prometheus.Gatherer `hcl:"inputs"`
	// Listen is the address of the sink's own HTTP server, which serves the
	// metrics at /metrics. Mutually exclusive with Path.
	Listen string `hcl:"listen,optional"`
	// Path mounts the metrics on the agent's HTTP server. When neither
	// Listen nor Path is set, Path is "/metrics/NAME" (NAME: the instance
	// name).
	Path string `hcl:"path,optional"`
	// ConstLabels are added to every series that does not already have a
	// label of that name (the series' own label wins).
	ConstLabels map[string]string `hcl:"const_labels,optional"`
	// HonorTimestamps keeps the timestamps inputs put on samples; false
	// strips them, so the scraper stamps samples with the scrape time.
	HonorTimestamps bool `hcl:"honor_timestamps,optional"`
	// OpenMetrics offers the OpenMetrics format to scrapers that ask for it
	// (Prometheus does). false always serves the Prometheus text format, as
	// statsd_exporter and most exporters do: OpenMetrics exposes a counter
	// whose name lacks "_total" as type unknown.
	OpenMetrics bool `hcl:"openmetrics,optional"`
	// WebConfigFile is a web config file (the exporter-toolkit format of
	// Prometheus' --web.config.file: TLS, client certificates, basic auth)
	// for the sink's own server (listen). Default: the agent's
	// --web.config.file. Relative to the config file's directory.
	WebConfigFile string `hcl:"web_config_file,optional"`
	// MaxConcurrentScrapes bounds the scrapes served at once; the excess is
	// answered 503 with Retry-After and counted. Concurrent scrapes share
	// one gather, so each admitted scrape costs encoding CPU and buffers,
	// not a copy of every series: the limit bounds CPU and latency.
	MaxConcurrentScrapes int `hcl:"max_concurrent_scrapes,optional"`
}

// Exports of a metrics_sink: none.
type Exports struct{}

// DefaultMaxConcurrentScrapes is the default of max_concurrent_scrapes.
// Each Prometheus server scrapes a target once per interval, so 10 covers
// several HA pairs plus people looking; beyond that, concurrent scrapes of a
// large sink only share the CPU and all get slower.
const DefaultMaxConcurrentScrapes = 10

// SetDefaults sets honor_timestamps and openmetrics to true and
// max_concurrent_scrapes to DefaultMaxConcurrentScrapes.
func (a *Arguments) SetDefaults() {
	a.HonorTimestamps = true
	a.OpenMetrics = true
	a.MaxConcurrentScrapes = DefaultMaxConcurrentScrapes
}

// ListenPath is where a sink with its own server (listen) serves metrics.
const ListenPath = "/metrics"

// Validate checks the arguments.
func (a Arguments) Validate() error {
	var errs []error
	for i, in := range a.Inputs {
		if in == nil {
			errs = append(errs, pipeline.ErrorAt("inputs", fmt.Errorf("element %d is null", i)))
		}
	}
	if a.MaxConcurrentScrapes < 1 {
		errs = append(errs, pipeline.ErrorAt("max_concurrent_scrapes", fmt.Errorf("must be at least 1, got %d", a.MaxConcurrentScrapes)))
	}
	if a.Listen != "" && a.Path != "" {
		errs = append(errs, pipeline.ErrorAt("path", errors.New("set either listen (own server) or path (agent server), not both")))
	}
	if a.WebConfigFile != "" && a.Listen == "" {
		errs = append(errs, pipeline.ErrorAt("web_config_file", errors.New("web_config_file applies to the sink's own server: set listen too (on the agent's server, --web.config.file applies)")))
	}
	if a.Listen != "" {
		if _, _, err := net.SplitHostPort(a.Listen); err != nil {
			errs = append(errs, pipeline.ErrorAt("listen", fmt.Errorf("invalid address %q: %w", a.Listen, err)))
		}
	}
	if a.Path != "" {
		switch {
		case !strings.HasPrefix(a.Path, "/") || a.Path == "/":
			errs = append(errs, pipeline.ErrorAt("path", fmt.Errorf("path %q must start with / and not be the root", a.Path)))
		case path.Clean(a.Path) != a.Path || strings.ContainsAny(a.Path, "?# \t"):
			errs = append(errs, pipeline.ErrorAt("path", fmt.Errorf("path %q is not a clean URL path (no trailing slash, dot segments, query or spaces)", a.Path)))
		case pipeline.IsBuiltinPath(a.Path):
			errs = append(errs, pipeline.ErrorAt("path", fmt.Errorf("path %q is the agent's own: built-in paths are refused (/metrics, /-/..., /api/...)", a.Path)))
		}
	}
	for name, value := range a.ConstLabels {
		switch {
		case strings.HasPrefix(name, "__"):
			errs = append(errs, pipeline.ErrorAt("const_labels", fmt.Errorf("label name %q is reserved (starts with __)", name)))
		case !pipeline.ValidLabelName(name):
			errs = append(errs, pipeline.ErrorAt("const_labels", fmt.Errorf("invalid label name %q", name)))
		case name == "le" || name == "quantile":
			errs = append(errs, pipeline.ErrorAt("const_labels", fmt.Errorf("label name %q is reserved for histograms and summaries", name)))
		case !utf8.ValidString(value):
			errs = append(errs, pipeline.ErrorAt("const_labels", fmt.Errorf("label %q: value is not valid UTF-8", name)))
		}
	}
	return errors.Join(errs...)
}

// ResolvePaths makes a relative web_config_file relative to the config
// file's directory.
func (a *Arguments) ResolvePaths(configDir string) {
	a.WebConfigFile = pipeline.ResolvePath(configDir, a.WebConfigFile)
}

// ReferencedFiles makes the web config file part of the arguments: an edit
// is checked (Provision) at the next reload, and the watcher reloads when
// it changes. The running server re-reads it on every connection anyway.
func (a *Arguments) ReferencedFiles() []string {
	if a.WebConfigFile == "" {
		return nil
	}
	return []string{a.WebConfigFile}
}

// Provision checks the web config file, so that a broken one is a load
// error pointing at web_config_file.
func (a *Arguments) Provision(pipeline.ProvisionContext) error {
	if err := web.ValidateWebConfig(a.WebConfigFile); err != nil {
		return pipeline.ErrorAt("web_config_file", err)
	}
	return nil
}

// ListenAddresses implements pipeline.ListenAddressUser: the loader refuses
// two sinks, or a sink and the agent's server, on the same port.
func (a Arguments) ListenAddresses() []pipeline.ListenAddress {
	if a.Listen == "" {
		return nil
	}
	return []pipeline.ListenAddress{{Network: "tcp", Address: a.Listen, Attr: "listen"}}
}

// Component is a running metrics_sink.
type Component struct {
	opts    pipeline.Options[Exports]
	metrics *selfMetrics
	handler http.Handler
	state   atomic.Pointer[state] // what a scrape uses; swapped whole by Update
	errLog  *slog.Logger          // rate-limited

	gzips sync.Pool // *gzip.Writer, for scrapes served from encoded families
	// gzPage is the last compressed page served from versioned inputs
	// (encoded.go: gzipped); gzMu serializes compressing one.
	gzPage atomic.Pointer[gzPage]
	gzMu   sync.Mutex
	flate  *flate.Writer // compresses chunks (gzpage.go); guarded by gzMu

	flightMu sync.Mutex // guards flight
	flight   *flight    // the gather in flight, shared by the scrapes that arrive during it

	mu      sync.Mutex // guards the fields below
	args    Arguments  // current arguments, Path resolved
	running bool
	serving *web.Endpoint
	// serves is serving.Serving(), kept apart from mu: a Commit holds mu
	// while the old server drains (up to 5 s), and /-/ready must answer.
	serves atomic.Bool
}

var (
	_ pipeline.Component[Arguments] = (*Component)(nil)
	_ pipeline.ReadinessReporter    = (*Component)(nil)
	_ pipeline.Validator            = Arguments{}
	_ pipeline.Provisioner          = (*Arguments)(nil)
	_ pipeline.FileReferrer         = (*Arguments)(nil)
	_ pipeline.PathResolver         = (*Arguments)(nil)
)

// Build creates a metrics_sink. It binds nothing: serving starts in Run.
func Build(opts pipeline.Options[Exports], a Arguments) (pipeline.Component[Arguments], error) {
	c := &Component{opts: opts, errLog: ratelog.New(opts.Logger, ratelog.Options{Interval: 10 * time.Second})}
	args := c.resolve(a)
	m, err := newSelfMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	c.metrics = m
	c.args = args
	c.state.Store(newState(args, m))

	// One handler per format choice; each scrape takes the one its state
	// says, so an Update switches formats atomically like everything else.
	handler := func(openMetrics bool) http.Handler {
		// Not promhttp's CoalesceGather: it keeps handing out a finished
		// gather's result for as long as any scrape sharing it is still
		// encoding, so under steady overlapping scrapes the data never
		// refreshes. sharedGather shares only a gather still in flight.
		// Not MaxRequestsInFlight either: it would count per handler, not
		// per sink, and its 503 has no Retry-After and is not counted.
		return promhttp.HandlerFor(gathererFunc(c.sharedGather), promhttp.HandlerOpts{
			ErrorLog:          promLogger{c.errLog},
			ErrorHandling:     promhttp.ContinueOnError,
			EnableOpenMetrics: openMetrics,
		})
	}
	withOM, textOnly := handler(true), handler(false)
	c.gzips.New = func() any { return gzip.NewWriter(nil) }
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := c.state.Load()
		if c.serveEncoded(w, r, st) {
			return
		}
		if st.openMetrics {
			withOM.ServeHTTP(w, r)
			return
		}
		textOnly.ServeHTTP(w, r)
	})
	// Rejected scrapes count in scrapes_total{code="503"} but stay out of
	// the duration histogram, which is about serving.
	limited := scrapelimit.Handler(promhttp.InstrumentHandlerDuration(m.duration, h),
		func() int { return c.state.Load().maxScrapes },
		func() { m.rejected.WithLabelValues("concurrency").Inc() })
	c.handler = promhttp.InstrumentHandlerCounter(m.scrapes, limited)
	opts.OnExports(Exports{})
	return c, nil
}

// resolve fills in the default path (it needs the component's ID).
func (c *Component) resolve(args Arguments) Arguments {
	if args.Listen == "" && args.Path == "" {
		args.Path = DefaultPath(c.opts.ID)
	}
	return args
}

// HTTPPaths is the path the sink mounts on the agent server (none with
// listen), so that the loader refuses two sinks on one path.
func (a Arguments) HTTPPaths(id string) []string {
	if a.Listen != "" {
		return nil
	}
	if a.Path != "" {
		return []string{a.Path}
	}
	return []string{DefaultPath(id)}
}

var _ pipeline.HTTPPathUser = Arguments{}

// DefaultPath is the path of a sink that sets neither listen nor path:
// "/metrics/NAME" for the component ID "metrics_sink.NAME".
func DefaultPath(id string) string {
	_, name, ok := strings.Cut(id, ".")
	if !ok {
		name = id
	}
	return "/metrics/" + name
}

// Handler serves the merged inputs; it is what Run mounts or serves.
func (c *Component) Handler() http.Handler { return c.handler }

// Run serves until ctx ends, then unmounts or shuts the server down
// (in-flight scrapes get up to 5s to finish).
func (c *Component) Run(ctx context.Context) error {
	c.mu.Lock()
	sv, err := c.acquire(c.args)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	sv.Start(c.opts.Logger, "metrics")
	c.serving, c.running = sv, true
	c.serves.Store(sv.Serving())
	c.mu.Unlock()

	<-ctx.Done()

	c.mu.Lock()
	sv, c.serving, c.running = c.serving, nil, false
	c.serves.Store(false)
	c.mu.Unlock()
	sv.Stop()
	return nil
}

// Ready implements pipeline.ReadinessReporter: the agent is not ready
// before the metrics are served.
func (c *Component) Ready() (bool, string) {
	if !c.serves.Load() {
		return false, "the metrics are not served yet"
	}
	return true, ""
}

// Update readies new arguments. A changed listen address is bound, or a
// changed path mounted (answering 404 until Commit), while the old one
// still serves; if that fails, nothing changes. Commit switches scrapes to
// the new inputs and labels atomically and releases the old address or
// path; Abort releases the new one.
func (c *Component) Update(a Arguments) (pipeline.Pending, error) {
	args := c.resolve(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	var fresh *web.Endpoint
	if c.running && c.endpoint(c.args).Moves(c.endpoint(args)) {
		sv, err := c.acquire(args)
		if err != nil {
			return nil, err
		}
		fresh = sv
	}
	st := newState(args, c.metrics)
	return &pending{c: c, args: args, st: st, fresh: fresh}, nil
}

// pending is a prepared Update.
type pending struct {
	c     *Component
	args  Arguments
	st    *state
	fresh *web.Endpoint // bound or mounted for args, not serving yet
}

func (p *pending) Commit() {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	serve, retire := web.CommitEndpoint(c.running, c.serving, p.fresh, c.endpoint(c.args), c.endpoint(p.args),
		func() (*web.Endpoint, error) { return c.acquire(p.args) }, c.opts.Logger, "metrics")
	c.serving = serve
	c.serves.Store(serve.Serving())
	c.state.Store(p.st)
	c.gzPage.Store(nil) // of the old inputs: never served again
	c.args = p.args
	retire.Stop()
}

func (p *pending) Abort() { p.fresh.Stop() }

// endpoint is where args serve the handler: on the agent's server at
// Path, or on an own server at Listen (under ListenPath) with the sink's
// or the agent's web config file.
func (c *Component) endpoint(args Arguments) web.EndpointSpec {
	return web.EndpointSpec{Listen: args.Listen, MountPath: args.Path, WebConfigFile: web.WebConfigFor(args.WebConfigFile, c.opts.WebConfigFile), Timeouts: c.opts.HTTPTimeouts}
}

// acquire mounts (inactive) or binds for args: everything that can fail.
// Called with c.mu held.
func (c *Component) acquire(args Arguments) (*web.Endpoint, error) {
	h := c.handler
	if args.Listen != "" {
		mux := http.NewServeMux()
		mux.Handle(ListenPath, c.handler)
		h = mux
	}
	e, err := web.AcquireEndpoint(c.endpoint(args), c.opts.HTTP, h)
	if err != nil {
		return nil, fmt.Errorf("metrics_sink: %w", err)
	}
	return e, nil
}

// Addr is the address the own server listens on, or "" (path mode, or not
// running): for tests and logs when listen is ":0".
func (c *Component) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.serving.Addr()
}

type selfMetrics struct {
	scrapes      *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	gatherErrors *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	gathers      prometheus.Counter
	gzipReused   prometheus.Counter
}

func newSelfMetrics(reg prometheus.Registerer) (*selfMetrics, error) {
	m := &selfMetrics{
		scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_metrics_sink_scrapes_total",
			Help: "Scrapes served, by HTTP status code.",
		}, []string{"code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_metrics_sink_scrape_duration_seconds",
			Help:    "Time to gather, merge, encode and send one scrape.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, nil),
		gatherErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_metrics_sink_gather_errors_total",
			Help: "Errors while gathering, by input (the ID of the component it comes from, e.g. relabel.app, or its index in inputs) and reason: gather (the input returned an error and nothing else), partial (one per error of an input that returned families too: a family or metric it dropped; its other families are served) or inconsistent (a family skipped: type clash with an earlier input, or metrics that do not match the family type).",
		}, []string{"input", "reason"}),
	}
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_metrics_sink_scrapes_rejected_total",
		Help: "Scrapes answered 503 without gathering, by reason: concurrency (max_concurrent_scrapes were being served).",
	}, []string{"reason"})
	m.rejected.WithLabelValues("concurrency")
	m.gathers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_metrics_sink_gathers_total",
		Help: "Gathers of the inputs. Scrapes that arrive while a gather is in flight share it, so this is at most the number of scrapes.",
	})
	m.gzipReused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_metrics_sink_gzip_pages_reused_total",
		Help: "Gzip scrapes answered with the page compressed for an earlier scrape, because every input handed out the same pre-encoded families (same version) since.",
	})
	for _, c := range []prometheus.Collector{m.scrapes, m.duration, m.gatherErrors, m.rejected, m.gathers, m.gzipReused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// promLogger adapts promhttp's error log (encoding errors) to slog.
type promLogger struct{ l *slog.Logger }

func (p promLogger) Println(v ...any) {
	p.l.Error(strings.TrimSpace(fmt.Sprintln(v...)))
}

// sortedConst returns const labels sorted by name.
func sortedConst(m map[string]string) []constLabel {
	out := make([]constLabel, 0, len(m))
	for k, v := range m {
		out = append(out, constLabel{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}
