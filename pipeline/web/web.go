package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

// Every HTTP listener of the agent (its own server, and any listener a
// component opens for HTTP) is served with the exporter-toolkit web config:
// the YAML file Prometheus and its exporters take with --web.config.file
// (tls_server_config, basic_auth_users with bcrypt hashes,
// http_server_config). As in Prometheus, the file is re-read on every TLS
// handshake (a rotated certificate is used by the next connection) and on
// every request (users and headers); whether TLS is on at all is decided
// when the listener starts.

// ValidateWebConfig checks a web config file: YAML, bcrypt hashes,
// headers, and that the certificate and key it names load. An empty path
// (plain HTTP, no auth) is valid.
func ValidateWebConfig(path string) error {
	if path == "" {
		return nil
	}
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("web config file %s: %w", path, err)
	}
	return nil
}

// WebConfigFor is the web config file a component's own listener uses: its
// own (an argument such as metrics_sink's web_config_file) when set, else
// the agent's (Options.WebConfigFile, from --web.config.file).
func WebConfigFor(component, agent string) string {
	if component != "" {
		return component
	}
	return agent
}

// HTTPServer is an HTTP server on a listener a component bound, served
// with a web config. Components bind the listener where binding may fail
// (Run, or Update for a changed address), call ValidateWebConfig there
// too, and start serving with ServeHTTP, which cannot fail synchronously:
//
//	ln, err := net.Listen("tcp", args.Listen)                // in Update/Run
//	cfg := web.WebConfigFor(args.WebConfigFile, opts.WebConfigFile)
//	if err := web.ValidateWebConfig(cfg); err != nil { ... }
//	srv := web.ServeHTTP(ln, handler, cfg, opts.Logger) // in Commit/Run
//	defer srv.Shutdown(5 * time.Second)
type HTTPServer struct {
	srv  *http.Server
	addr string
	done chan struct{}

	mu  sync.Mutex
	err error
}

// ServeHTTP serves h on ln in a goroutine with the web config at
// webConfigFile ("" for plain HTTP without auth). Shutdown stops it; the
// server owns ln from now on.
func ServeHTTP(ln net.Listener, h http.Handler, webConfigFile string, logger *slog.Logger) *HTTPServer {
	s := &HTTPServer{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			// TLS handshake errors (a plain-HTTP client, a scanner) are
			// the client's problem: a warning, not an error.
			ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		err := ServeWeb(ln, s.srv, webConfigFile, logger)
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server stopped", "address", s.addr, "err", err)
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
		}
	}()
	return s
}

// ServeWeb serves srv on ln with the web config at webConfigFile until the
// server is shut down; it is what the agent's own server uses.
func ServeWeb(ln net.Listener, srv *http.Server, webConfigFile string, logger *slog.Logger) error {
	// web.Serve logs "Listening on" and whether TLS is on at Info.
	err := web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &webConfigFile}, logger)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = ln.Close() // web.Serve returns before serving on a bad config
		if webConfigFile != "" {
			return fmt.Errorf("serving %s with web config file %s: %w", ln.Addr(), webConfigFile, err)
		}
	}
	return err
}

// Addr is the address the server listens on.
func (s *HTTPServer) Addr() string { return s.addr }

// Err is why the server stopped on its own (nil while it serves or after
// a Shutdown).
func (s *HTTPServer) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Shutdown stops accepting connections and waits up to timeout for
// in-flight requests, then closes what is left. It returns when the
// serving goroutine has ended. A nil server is a no-op.
func (s *HTTPServer) Shutdown(timeout time.Duration) {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.done
}
