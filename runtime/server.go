package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/internal/scrapelimit"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/ratelog"
)

// maxAgentScrapes bounds concurrent scrapes of the agent's /metrics.
const maxAgentScrapes = 10

// Mounts is the table of handlers components mount on the agent server.
type Mounts struct {
	mu sync.RWMutex
	m  map[string]http.Handler
}

// NewMounts returns an empty table.
func NewMounts() *Mounts { return &Mounts{m: map[string]http.Handler{}} }

// Mount implements HTTPMounter.
func (m *Mounts) Mount(path string, h http.Handler) (func(), error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("path %q must start with /", path)
	}
	if pipeline.IsBuiltinPath(path) || path == "/" {
		return nil, fmt.Errorf("path %s is built into the agent server", path)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := range m.m { // a subtree (path ending in /) overlaps what it covers: mountpath.go
		if PathsOverlap(p, path) {
			return nil, fmt.Errorf("path %s is already mounted by another component (%s)", path, p)
		}
	}
	m.m[path] = h
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			delete(m.m, path)
			m.mu.Unlock()
		})
	}, nil
}

func (m *Mounts) lookup(path string) http.Handler {
	m.mu.RLock()
	defer m.mu.RUnlock()
	h, _ := matchMount(m.m, path)
	return h
}

// ServerOptions configure the agent's HTTP handler.
type ServerOptions struct {
	Controller *Controller
	Mounts     *Mounts
	// EnableLifecycle allows POST /-/reload.
	EnableLifecycle bool
	// Reload re-reads and applies the config file.
	Reload func() error
	Logger *slog.Logger
	// UI serves what is neither built in nor mounted (the status UI, see
	// runtime/ui); nil answers 404.
	UI http.Handler
	// TrustedOrigins may send state-changing requests from a browser even
	// when it does not say they are same-origin (the origin of
	// --web.external-url: a proxy may rewrite Host).
	TrustedOrigins []string
	// Registerer takes the handler's self-metrics; nil registers none.
	Registerer prometheus.Registerer
}

// NewHandler returns the agent's HTTP handler: the built-in endpoints and
// whatever components mounted.
func NewHandler(o ServerOptions) http.Handler {
	// Method patterns: a GET pattern also serves HEAD, and any other
	// method gets 405 with an Allow header listing the accepted ones.
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathHealthy, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "Sluice is healthy.")
	})
	mux.HandleFunc("GET "+PathReady, func(w http.ResponseWriter, r *http.Request) {
		if ok, why := o.Controller.Readiness(); !ok {
			http.Error(w, "Sluice is not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Sluice is ready.")
	})
	reload := func(w http.ResponseWriter, r *http.Request) {
		if !o.EnableLifecycle {
			http.Error(w, "Lifecycle API is not enabled: start sluice with --web.enable-lifecycle.", http.StatusForbidden)
			return
		}
		if err := o.Reload(); err != nil {
			var ae *ApplyError
			if errors.As(err, &ae) {
				// Accepted and running; some components are unhealthy.
				http.Error(w, err.Error()+"\nSee /api/v0/components.", http.StatusInternalServerError)
				return
			}
			// err.Error() is redacted (DiagnosticsError, ApplyError); a
			// read error carries only the path.
			http.Error(w, "Config not applied; the running pipeline is unchanged.\n\n"+RedactText(err.Error()), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "Config reloaded.")
	}
	mux.HandleFunc("POST "+PathReload, reload)
	mux.HandleFunc("PUT "+PathReload, reload)
	mux.HandleFunc("GET "+PathComponents, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(o.Controller.Components()) // a failed write means the client left
	})
	// The agent's own metrics are small, but a burst of scrapes should not
	// pile up here either: the excess gets 503 with Retry-After, as on sinks.
	mux.Handle("GET "+PathMetrics, scrapelimit.Handler(promhttp.HandlerFor(o.Controller.Gatherer(), promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
		ErrorLog:          slogPrinter{o.Logger},
	}), func() int { return maxAgentScrapes }, nil))
	return crossOriginProtection(o, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if pipeline.IsBuiltinPath(r.URL.Path) {
			mux.ServeHTTP(w, r)
			return
		}
		if h := o.Mounts.lookup(r.URL.Path); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		if o.UI != nil {
			o.UI.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	}))
}

// crossOriginProtection refuses (403, counted) a state-changing request
// (POST, PUT, DELETE...) that a browser sends from another origin: a page
// the operator opens must not reload the config or push to a mounted
// receiver through the operator's browser (CSRF). It reads the browser's
// Sec-Fetch-Site, or Origin against Host; requests without either (curl,
// Prometheus, CI systems, webhook senders) and safe methods pass.
func crossOriginProtection(o ServerOptions, h http.Handler) http.Handler {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := http.NewCrossOriginProtection()
	for _, origin := range o.TrustedOrigins {
		if err := p.AddTrustedOrigin(origin); err != nil {
			logger.Warn("not a trusted origin", "origin", origin, "err", err)
		}
	}
	refused := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_http_cross_origin_refused_total",
		Help: "State-changing requests refused because a browser sent them from another origin (CSRF protection of the agent's server).",
	})
	if o.Registerer != nil {
		if err := o.Registerer.Register(refused); err != nil {
			logger.Warn("registering the cross-origin counter", "err", err)
		}
	}
	log := ratelog.New(logger, ratelog.Options{Interval: 10 * time.Second})
	p.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refused.Inc()
		log.Warn("refused a cross-origin state-changing request", "method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "remote", r.RemoteAddr)
		http.Error(w, "cross-origin request refused: state-changing requests from a browser must come from the agent's own pages", http.StatusForbidden)
	}))
	return p.Handler(h)
}

// slogPrinter adapts slog for promhttp's ErrorLog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	if p.l != nil {
		p.l.Error("serving metrics", "err", fmt.Sprint(v...))
	}
}
