package sluicecmd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/web"
)

// webConfigCheck re-validates --web.config.file whenever the pipeline
// config is reloaded (SIGHUP, POST /-/reload, a changed file: the watcher
// watches the web config file too), so that a broken edit is reported when
// it is made, not at the next connection. The listeners re-read the file
// themselves on every handshake and request, as Prometheus does: a broken
// file makes them refuse TLS handshakes or answer 500 until it is fixed.
type webConfigCheck struct {
	path   string
	logger *slog.Logger
	ok     prometheus.Gauge

	mu   sync.Mutex // reloads come from signals, the watcher and HTTP at once
	last error
}

func newWebConfigCheck(path string, logger *slog.Logger, reg prometheus.Registerer) *webConfigCheck {
	c := &webConfigCheck{
		path:   path,
		logger: logger,
		ok: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_web_config_last_check_successful",
			Help: "Whether the web config file (--web.config.file) was valid when last checked (at start and at every config reload); 1 without a web config file.",
		}),
	}
	c.ok.Set(1)
	reg.MustRegister(c.ok)
	return c
}

// check validates the file, logs a change of verdict and updates the gauge.
func (c *webConfigCheck) check(trigger string) error {
	err := web.ValidateWebConfig(c.path)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		c.ok.Set(0)
		c.logger.Error("web config file is invalid; HTTP listeners refuse TLS handshakes or answer 500 until it is fixed", "trigger", trigger, "err", err)
	case c.last != nil:
		c.ok.Set(1)
		c.logger.Info("web config file is valid again", "trigger", trigger, "file", c.path)
	}
	c.last = err
	return err
}

// files is what the watcher watches besides the pipeline's own files.
func (c *webConfigCheck) files() []string {
	if c.path == "" {
		return nil
	}
	return []string{c.path}
}

// probeServer serves only /-/healthy and /-/ready, in plain HTTP and
// without auth, for kubelet probes when the main server requires basic
// auth or client certificates (--web.probe-listen-address).
func probeServer(addr string, main http.Handler, logger *slog.Logger) (*http.Server, net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listening on %s (--web.probe-listen-address): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(pipeline.PathHealthy, main)
	mux.Handle(pipeline.PathReady, main)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("serving probes without auth", "addr", ln.Addr().String(), "paths", []string{pipeline.PathHealthy, pipeline.PathReady})
	return srv, ln, nil
}

func serveErr(what string, err error) error {
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
