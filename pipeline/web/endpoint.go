package web

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/pipeline"
)

// shutdownGrace is how long in-flight requests get when an endpoint stops.
const shutdownGrace = 5 * time.Second

// EndpointSpec is where a component serves its HTTP handler: on a
// listener of its own (Listen, with WebConfigFile, the component's or the
// agent's: see WebConfigFor), or, without Listen, mounted on the agent's
// server at MountPath (a subtree if it ends in "/").
type EndpointSpec struct {
	Listen        string
	MountPath     string // ignored with Listen
	WebConfigFile string // ignored without Listen
}

func (s EndpointSpec) normal() EndpointSpec {
	if s.Listen != "" {
		s.MountPath = ""
	} else {
		s.WebConfigFile = ""
	}
	return s
}

// Moves reports whether serving next instead of s needs another socket or
// mount (another address or path).
func (s EndpointSpec) Moves(next EndpointSpec) bool {
	a, b := s.normal(), next.normal()
	return a.Listen != b.Listen || a.MountPath != b.MountPath
}

// Rewebs reports whether next is the same own listener as s with another
// web config file: whether TLS is on is decided when a server starts, so
// the server must restart on the address.
func (s EndpointSpec) Rewebs(next EndpointSpec) bool {
	a, b := s.normal(), next.normal()
	return !s.Moves(next) && a.Listen != "" && a.WebConfigFile != b.WebConfigFile
}

// Endpoint is a handler served as an EndpointSpec says. AcquireEndpoint
// does everything that can fail (bind the address, mount the path); a
// mount answers 404 until Start, so that an Update can prepare it while
// the old endpoint still serves. Stop undoes either. An Endpoint is used
// under its component's lock.
type Endpoint struct {
	spec    EndpointSpec
	h       http.Handler
	unmount func()
	active  atomic.Bool // a mount serves once started
	ln      net.Listener
	srv     *HTTPServer
}

// AcquireEndpoint binds spec.Listen (after checking its web config file,
// so that a broken file fails the component's Run or Update instead of a
// serving goroutine), or mounts h at spec.MountPath on mounts, inactive.
func AcquireEndpoint(spec EndpointSpec, mounts pipeline.HTTPMounter, h http.Handler) (*Endpoint, error) {
	e := &Endpoint{spec: spec.normal(), h: h}
	if spec.Listen == "" {
		if mounts == nil {
			return nil, errors.New("no agent HTTP server to mount on (set listen)")
		}
		unmount, err := mounts.Mount(spec.MountPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !e.active.Load() {
				http.NotFound(w, r)
				return
			}
			h.ServeHTTP(w, r)
		}))
		if err != nil {
			return nil, fmt.Errorf("mount %s: %w", spec.MountPath, err)
		}
		e.unmount = unmount
		return e, nil
	}
	if err := ValidateWebConfig(spec.WebConfigFile); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", spec.Listen)
	if err != nil {
		return nil, err
	}
	e.ln = ln
	return e, nil
}

// Start serves what AcquireEndpoint bound or mounted; what says what is
// served, for the log.
func (e *Endpoint) Start(logger *slog.Logger, what string) {
	if e.ln == nil {
		e.active.Store(true)
		return
	}
	logger.Info("serving "+what, "address", e.ln.Addr().String(), "web_config_file", e.spec.WebConfigFile)
	e.srv = ServeHTTP(e.ln, e.h, e.spec.WebConfigFile, logger)
}

// Stop unmounts, or shuts the server down (in-flight requests get up to
// 5 s), or closes a listener that never started. A nil Endpoint is a
// no-op.
func (e *Endpoint) Stop() {
	if e == nil {
		return
	}
	if e.unmount != nil {
		e.unmount()
	}
	if e.srv != nil {
		e.srv.Shutdown(shutdownGrace)
	} else if e.ln != nil {
		_ = e.ln.Close()
	}
}

// Addr is the address an own listener serves on, or "" (a mount, or not
// started): for tests and logs when listen is ":0".
func (e *Endpoint) Addr() string {
	if e == nil || e.srv == nil {
		return ""
	}
	return e.srv.Addr()
}

// CommitEndpoint is what a component's Commit does with its endpoint,
// going from the spec of cur to next: fresh is what its Update prepared
// (for a running component whose endpoint moves), acquire acquires next.
// It returns the endpoint to serve from now on, and the one to stop once
// the component's new state is in place (nil if none).
//   - not running: fresh is released; Run serves next when it starts;
//   - fresh: it starts and cur retires;
//   - moved, but Run started after Update: next is acquired now; if that
//     fails cur keeps serving (logged);
//   - the same own listener with another web config file: the server
//     restarts on its address; if that fails nothing serves until the
//     next reload or restart (logged).
func CommitEndpoint(running bool, cur, fresh *Endpoint, curSpec, next EndpointSpec, acquire func() (*Endpoint, error), logger *slog.Logger, what string) (serve, retire *Endpoint) {
	switch {
	case !running:
		fresh.Stop()
		return cur, nil
	case fresh != nil:
		fresh.Start(logger, what)
		return fresh, cur
	case curSpec.Moves(next):
		e, err := acquire()
		if err != nil {
			logger.Error("could not move to the new address; serving the old one", "err", err)
			return cur, nil
		}
		e.Start(logger, what)
		return e, cur
	case curSpec.Rewebs(next):
		cur.Stop()
		e, err := acquire()
		if err != nil {
			logger.Error("could not restart the server with the new web config file; not serving until the next reload or restart", "err", err)
			return nil, nil
		}
		e.Start(logger, what)
		return e, nil
	}
	return cur, nil
}
