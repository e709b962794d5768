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
	"path/filepath"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/web"
	"github.com/sluicehq/sluice/runtime"
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
	// webConfigFile is the exporter-toolkit web config (TLS, basic auth)
	// of every HTTP listener; probeListenAddr an optional plain-HTTP
	// listener for /-/healthy and /-/ready only (see web.go).
	webConfigFile   string
	probeListenAddr string
	// gogc is the garbage collector's target unless GOGC is set (gogc.go).
	gogc int
	// keepStartupPages keeps the executable's pages mapped once the
	// agent is ready, instead of dropping them (startpages.go).
	keepStartupPages bool
	// timeouts bound reading requests on every listener.
	timeouts pipeline.HTTPTimeouts
	// distribution names the binary's set of components (main.go).
	distribution string
}

func runAgent(f runFlags, stderr io.Writer) int {
	logger := f.logger
	started := time.Now()
	uiBase, routePrefix, err := webPaths(f.externalURL, f.routePrefix)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 2
	}
	gogc, gogcFrom, err := applyGOGC(f.gogc, logger)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 2
	}
	logger.Info("starting sluice", "distribution", f.distribution, "version", version.Info(), "build_context", version.BuildContext(), "gogc", gogc, "gogc_from", gogcFrom)

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		versioncollector.NewCollector("sluice"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if f.webConfigFile != "" {
		if abs, err := filepath.Abs(f.webConfigFile); err == nil {
			f.webConfigFile = abs // components may run with another working directory in mind
		}
	}
	webCheck := newWebConfigCheck(f.webConfigFile, logger, reg)
	if err := webCheck.check("start"); err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	mounts := runtime.NewMounts()
	ctrl := runtime.NewController(runtime.ControllerOptions{
		Logger:   logger,
		Registry: reg,
		DataPath: f.storagePath,
		HTTP:     mounts,
		// Components' own HTTP listeners use it unless they set their own.
		WebConfigFile: f.webConfigFile,
		HTTPTimeouts:  f.timeouts,
		LoadOptions: runtime.LoadOptions{
			AllowEmpty:              f.allowEmpty,
			AgentListenAddress:      f.listenAddr,
			AgentProbeListenAddress: f.probeListenAddr,
		},
	})

	// The first config must load: a typo, a missing file or a path to a
	// directory should fail the rollout, not run an agent that is never
	// ready. Only an accepted config whose components reported errors
	// keeps running (reported as unhealthy).
	if err := ctrl.LoadFile(f.config, true); err != nil {
		var ae *runtime.ApplyError
		if !errors.As(err, &ae) {
			var de *runtime.DiagnosticsError
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
		_ = webCheck.check(trigger) // logged; it does not block the pipeline's reload
		err := ctrl.LoadFile(f.config, force)
		var ae *runtime.ApplyError
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
	statusUI, err := newStatusUI(ctrl, uiBase, f.distribution, started, logger)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	handler := runtime.NewHandler(runtime.ServerOptions{
		Controller:      ctrl,
		Mounts:          mounts,
		EnableLifecycle: f.enableLifecycle,
		Reload:          func() error { return reload("http", true) },
		Logger:          logger,
		UI:              statusUI,
		TrustedOrigins:  trustedOrigins(f.externalURL),
		Registerer:      reg,
	})
	srv := &http.Server{
		Handler:  withRoutePrefix(routePrefix, handler),
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	f.timeouts.Apply(srv)
	logger.Info("serving HTTP", "addr", ln.Addr().String(), "route_prefix", routePrefix, "external_path", uiBase)
	var probeSrv *http.Server
	var probeLn net.Listener
	if f.probeListenAddr != "" {
		probeSrv, probeLn, err = probeServer(f.probeListenAddr, handler, f.timeouts, logger)
		if err != nil {
			_ = ln.Close()
			fmt.Fprintf(stderr, "sluice: %v\n", err)
			return 1
		}
	}

	w, err := runtime.NewWatcher(runtime.WatcherOptions{
		Path:          f.config,
		Debounce:      f.debounce,
		CheckInterval: f.checkInterval,
		Files:         func() []string { return append(ctrl.WatchedFiles(), webCheck.files()...) },
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
	// Once the pipeline is up, what only starting it needed is let go
	// (startmem.go).
	go releaseStartupMemory(ctx, ctrl.Ready, 50*time.Millisecond, startupReleaseWait, startupRelease(logger, !f.keepStartupPages))
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
			return serveErr("HTTP server", web.ServeWeb(ln, srv, f.webConfigFile, logger))
		}, func(error) {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
		})
	}
	if probeSrv != nil { // probe listener
		g.Add(func() error {
			return serveErr("probe HTTP server", probeSrv.Serve(probeLn))
		}, func(error) { _ = probeSrv.Close() })
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
