package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/internal/scrapelimit"
	"github.com/sluicehq/sluice/pipeline"
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
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	})
}

// slogPrinter adapts slog for promhttp's ErrorLog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	if p.l != nil {
		p.l.Error("serving metrics", "err", fmt.Sprint(v...))
	}
}
