package sluicecmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"

	"github.com/sluicehq/sluice/pipeline"
)

type runFlags struct {
	config          string
	listenAddr      string
	storagePath     string
	enableLifecycle bool
	debounce        time.Duration
	checkInterval   time.Duration
	allowEmpty      bool
	externalURL     string
	routePrefix     string
	logger          *slog.Logger
}

func runAgent(f runFlags, stderr io.Writer) int {
	logger := f.logger
	started := time.Now()
	uiBase, routePrefix, err := webPaths(f.externalURL, f.routePrefix)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 2
	}
	logger.Info("starting sluice", "version", version.Info(), "build_context", version.BuildContext())

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		versioncollector.NewCollector("sluice"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	mounts := pipeline.NewMounts()
	ctrl := pipeline.NewController(pipeline.ControllerOptions{
		Logger:   logger,
		Registry: reg,
		DataPath: f.storagePath,
		HTTP:     mounts,
		LoadOptions: pipeline.LoadOptions{
			AllowEmpty:         f.allowEmpty,
			AgentListenAddress: f.listenAddr,
		},
	})

	// The first config must load: a typo, a missing file or a path to a
	// directory should fail the rollout, not run an agent that is never
	// ready. Only an accepted config whose components reported errors
	// keeps running (reported as unhealthy).
	if err := ctrl.LoadFile(f.config, true); err != nil {
		var ae *pipeline.ApplyError
		if !errors.As(err, &ae) {
			var de *pipeline.DiagnosticsError
			if errors.As(err, &de) {
				fmt.Fprintln(stderr, err) // rendered redacted
			} else {
				fmt.Fprintf(stderr, "sluice: %v\n", err)
			}
			return 1
		}
		logger.Error("config applied with errors", "err", err)
	}

	reload := func(trigger string, force bool) error {
		err := ctrl.LoadFile(f.config, force)
		var ae *pipeline.ApplyError
		switch {
		case errors.As(err, &ae):
			logger.Error("config applied with errors", "trigger", trigger, "err", err)
		case err != nil:
			logger.Error("config reload failed; the running pipeline is unchanged", "trigger", trigger, "err", err)
		}
		return err
	}

	ln, err := net.Listen("tcp", f.listenAddr)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: listening on %s: %v\n", f.listenAddr, err)
		return 1
	}
	statusUI, err := newStatusUI(ctrl, uiBase, started, logger)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	srv := &http.Server{
		Handler: withRoutePrefix(routePrefix, pipeline.NewHandler(pipeline.ServerOptions{
			Controller:      ctrl,
			Mounts:          mounts,
			EnableLifecycle: f.enableLifecycle,
			Reload:          func() error { return reload("http", true) },
			Logger:          logger,
			UI:              statusUI,
		})),
		ReadHeaderTimeout: 10 * time.Second,
	}
	logger.Info("serving HTTP", "addr", ln.Addr().String(), "route_prefix", routePrefix, "external_path", uiBase)

	w, err := pipeline.NewWatcher(pipeline.WatcherOptions{
		Path:          f.config,
		Debounce:      f.debounce,
		CheckInterval: f.checkInterval,
		Files:         ctrl.WatchedFiles,
		Reload:        func() { _ = reload("file", false) },
		Logger:        logger,
		Registerer:    reg,
	})
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}

	var g run.Group
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	{ // signals: SIGINT/SIGTERM stop, SIGHUP reloads
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		done := make(chan struct{})
		g.Add(func() error {
			for {
				select {
				case s := <-sig:
					if s == syscall.SIGHUP {
						_ = reload("sighup", true)
						continue
					}
					logger.Info("received signal, stopping", "signal", s.String())
					return nil
				case <-done:
					return nil
				}
			}
		}, func(error) { signal.Stop(sig); close(done) })
	}
	{ // HTTP server
		g.Add(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("HTTP server: %w", err)
			}
			return nil
		}, func(error) {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
		})
	}
	{ // config watcher
		wctx, wcancel := context.WithCancel(ctx)
		g.Add(func() error { return w.Run(wctx) }, func(error) { wcancel() })
	}
	{ // controller: runs components, stops them all at the end
		cctx, ccancel := context.WithCancel(ctx)
		g.Add(func() error { return ctrl.Run(cctx) }, func(error) { ccancel() })
	}

	// Stopping is bounded: each component gets ControllerOptions.StopTimeout
	// (in parallel) and the HTTP server 5s to finish in-flight requests.
	if err := g.Run(); err != nil {
		logger.Error("sluice stopped with an error", "err", err)
		return 1
	}
	logger.Info("sluice stopped")
	return 0
}
