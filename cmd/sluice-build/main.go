// Command sluice-build builds a sluice binary with plugins and any subset
// of the standard components, in the spirit of xcaddy:
//
//	sluice-build --with github.com/acme/sluice-foo@v1.2.0 \
//	    --with example.com/you/sluice-bar=../sluice-bar -o ./sluice
//	sluice-build --distribution lite -o ./sluice-lite
//	sluice-build --components statsd_receiver,metrics_sink --distribution statsd -o ./sluice-statsd
//
// It writes a temporary main module that imports the CLI
// (github.com/sluicehq/sluice/sluicecmd), the chosen standard components
// (all unless --components or --distribution lite) and the root package of
// each plugin module, runs go mod tidy and go build with
// the Makefile's flags, and prints what went in. See docs/plugins.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command with its arguments, environment and outputs; it
// returns the exit code: 0 built, 1 the build failed, 2 a usage error.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	app := kingpin.New("sluice-build", "Build a sluice binary with plugins.")
	app.Writer(stdout)
	app.ErrorWriter(stderr)
	app.HelpFlag.Short('h')
	app.Terminate(nil)
	var in planInput
	app.Flag("with", "MODULE[@VERSION][=DIR or =MODULE@VERSION]: a plugin module whose root package registers components; "+
		"--with "+coreModule+"=DIR builds that checkout of Sluice. Repeatable.").PlaceHolder("MODULE").StringsVar(&in.With)
	app.Flag("sluice-version", "The Sluice version to build (a release, a commit, latest). "+
		"Default: the one this sluice-build comes from (its checkout under go run, its release after go install), else latest.").
		PlaceHolder("VERSION").StringVar(&in.SluiceVersion)
	app.Flag("output", "The binary to write.").Short('o').Default("sluice").StringVar(&in.Output)
	app.Flag("race", "Build with the race detector.").BoolVar(&in.Race)
	app.Flag("components", "Comma-separated standard components to build in, e.g. statsd_receiver,relabel,metrics_sink "+
		"(default: all of them). Plugins come in with --with.").PlaceHolder("NAMES").StringVar(&in.Components)
	app.Flag("distribution", "The name sluice components, sluice version and the status UI show for this binary: "+
		"full (every standard component), lite (the sidecar's: "+strings.Join(liteComponents(), ",")+"), or your own with --components. Default: custom.").
		PlaceHolder("NAME").StringVar(&in.Distribution)
	emitMain := app.Flag("emit-main", "Write the generated main.go to this file and build nothing (cmd/sluice-lite/main.go is made this way).").PlaceHolder("FILE").String()
	keep := app.Flag("keep", "Keep the generated module (it is always kept after a failure).").Bool()
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(stderr, "sluice-build: %v (see sluice-build --help)\n", err)
		return 2
	}
	if app.HelpFlag.Model().Value.String() == "true" {
		return 0
	}
	cwd, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(stderr, "sluice-build: %v\n", err)
		return 1
	}
	in.Cwd, in.Self = cwd, self()
	p, err := newPlan(in)
	if err != nil {
		fmt.Fprintf(stderr, "sluice-build: %v\n", err)
		return 2
	}
	if *emitMain != "" {
		if err := os.WriteFile(*emitMain, mainGo(p), 0o644); err != nil {
			fmt.Fprintf(stderr, "sluice-build: %v\n", err)
			return 1
		}
		return 0
	}
	b := &builder{Env: env, Keep: *keep, Log: stderr}
	if err := b.build(ctx, p); err != nil {
		fmt.Fprintf(stderr, "sluice-build: %v\n", err)
		return 1
	}
	return 0
}

// self finds out which Sluice this sluice-build was built from.
func self() selfInfo {
	var s selfInfo
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Path != coreModule {
		return s
	}
	s.Version = bi.Main.Version
	fromCheckout := s.Version == "(devel)" || s.Version == ""
	for _, kv := range bi.Settings {
		if kv.Key == "vcs" { // stamped by go build in a checkout, never by go install pkg@version
			fromCheckout = true
		}
	}
	if !fromCheckout {
		return s
	}
	s.Version = "(devel)"
	// The source file's path, unless built with -trimpath: this file is
	// cmd/sluice-build/main.go of the checkout.
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err == nil && isCoreGoMod(b) {
			s.Checkout = root
		}
	}
	return s
}

func isCoreGoMod(b []byte) bool {
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`) == coreModule
		}
	}
	return false
}
