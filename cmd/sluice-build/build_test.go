package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// ---- BEGIN hello component: a plugin in its own module, written against
// the pipeline API of this branch. When the API changes, only this constant
// changes. ----
const helloComponentGo = `// Package hello is a plugin: hello_source exports one gauge with a
// configured value.
package hello

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline"
)

// Arguments of hello_source.
type Arguments struct {
	Value float64 ` + "`hcl:\"value\"`" + `
}

// Exports of hello_source.
type Exports struct {
	Metrics prometheus.Gatherer ` + "`hcl:\"metrics\"`" + `
}

func init() {
	pipeline.Register(pipeline.Registration[Arguments, Exports]{
		Name:      "hello_source",
		Stability: pipeline.StabilityExperimental,
		Summary:   "One gauge, hello_value, with the configured value.",
		Build: func(opts pipeline.Options[Exports], args Arguments) (pipeline.Component[Arguments], error) {
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "hello_value", Help: "The configured value."})
			g.Set(args.Value)
			reg := prometheus.NewRegistry()
			reg.MustRegister(g)
			opts.OnExports(Exports{Metrics: reg})
			return &component{gauge: g}, nil
		},
	})
}

type component struct{ gauge prometheus.Gauge }

var _ pipeline.Component[Arguments] = (*component)(nil)

func (c *component) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Update acquires nothing: the new value is set at Commit.
func (c *component) Update(args Arguments) (pipeline.Pending, error) {
	return pipeline.CommitFunc(func() { c.gauge.Set(args.Value) }), nil
}
`

// ---- END hello component ----

const helloModule = "example.com/sluice-hello"

// writeModule writes a module with one package (hello.go) to a new
// temporary directory.
func writeModule(t *testing.T, path, src string) string {
	t.Helper()
	dir := t.TempDir()
	goMod := fmt.Sprintf("module %s\n\ngo 1.26\n\nrequire %s %s\n", path, coreModule, zeroVersion)
	for name, content := range map[string]string{"go.mod": goMod, "hello.go": src} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// buildEnv is the environment of the go commands: this process's, so
// GOCACHE (shared: the agent is not recompiled from scratch), GOMODCACHE
// and GOPROXY pass through, with -mod=mod so that nothing depends on a
// vendor directory. GOPROXY is not forced to off: go mod tidy needs the
// go.mod file of every module in the graph, including some no build
// downloads (test-only requirements of dependencies without module graph
// pruning, e.g. alecthomas/units -> testify), and a module cache filled by
// go build alone lacks them. Offline, GOPROXY=off works once the cache
// holds them (after any go mod tidy of the core); see docs/plugins.md.
func buildEnv() []string {
	return append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=mod"))
}

// checkoutForBuild is the root of this checkout, for a test that runs go
// build on the whole agent; it skips under -short.
func checkoutForBuild(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: builds the whole agent")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// buildContext bounds the go commands by the test's deadline, leaving time
// to report their output.
func buildContext(t *testing.T) context.Context {
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		t.Cleanup(cancel)
	}
	return ctx
}

// A plugin in a module outside the repository, built into a binary with
// sluice-build against this checkout, runs in a pipeline and is listed as a
// plugin with its module.
func TestBuildWithOutOfTreePlugin(t *testing.T) {
	root := checkoutForBuild(t)
	hello := writeModule(t, helloModule, helloComponentGo)
	bin := filepath.Join(t.TempDir(), "sluice")

	var stdout, stderr bytes.Buffer
	code := run(buildContext(t), []string{"--with", coreModule + "=" + root, "--with", helloModule + "=" + hello, "-o", bin}, buildEnv(), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("sluice-build = %d\n%s%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{
		"  sluice  " + coreModule + " " + zeroVersion + " => " + root + " (version ",
		"  plugin  " + helloModule + " " + zeroVersion + " => " + hello + "\n",
		"wrote " + bin,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("sluice-build output lacks %q:\n%s", want, stderr.String())
		}
	}

	// sluice components lists the plugin with its module.
	out, err := exec.Command(bin, "components", "--json").Output()
	if err != nil {
		t.Fatalf("components --json: %v", err)
	}
	var docs []struct{ Name, Kind, Module, Version string }
	if err := json.Unmarshal(out, &docs); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, d := range docs {
		kinds[d.Name] = d.Kind + " " + d.Module + " " + d.Version
	}
	if want := "plugin " + helloModule + " " + zeroVersion + " => " + hello; kinds["hello_source"] != want {
		t.Errorf("hello_source is %q, want %q", kinds["hello_source"], want)
	}
	if want := "standard " + coreModule + " " + zeroVersion + " => " + root; kinds["metrics_sink"] != want {
		t.Errorf("metrics_sink is %q, want %q", kinds["metrics_sink"], want)
	}
	out, err = exec.Command(bin, "components").Output()
	if err != nil || !regexp.MustCompile(`(?m)^hello_source +experimental +plugin +example\.com/sluice-hello +`).Match(out) {
		t.Errorf("components: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "version").Output()
	if err != nil || !strings.Contains(string(out), "plugin modules:\n    "+helloModule+" "+zeroVersion+" => "+hello+" (hello_source)\n") {
		t.Errorf("version: %v\n%s", err, out)
	}

	// The binary runs a pipeline with the plugin.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sluice.hcl")
	if err := os.WriteFile(cfg, []byte(`
hello_source "h" {
  value = 42.5
}

metrics_sink "out" {
  inputs = [hello_source.h.metrics]
  path   = "/metrics/out"
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := pipelinetest.FreeTCPAddr(t)
	logs := &pipelinetest.Buffer{}
	cmd := exec.Command(bin, "run", "--server.http.listen-addr", addr, "--storage.path", filepath.Join(dir, "data"), cfg)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("sluice output:\n%s", logs.String())
		}
	})
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	running := func(cond func() bool) func() bool {
		return func() bool {
			select {
			case <-exited:
				t.Fatalf("sluice exited:\n%s", logs.String())
			default:
			}
			return cond()
		}
	}
	pipelinetest.Eventually(t, time.Minute, running(func() bool { code, _ := get("/-/ready"); return code == 200 }), "sluice is not ready")
	var body string
	pipelinetest.Eventually(t, time.Minute, running(func() bool {
		var code int
		code, body = get("/metrics/out")
		return code == 200 && strings.Contains(body, "hello_value")
	}), "the sink does not serve hello_value")
	if !regexp.MustCompile(`(?m)^hello_value 42\.5$`).MatchString(body) {
		t.Errorf("scrape of /metrics/out:\n%s", body)
	}
}

// A plugin that does not compile fails the build with go's output, and the
// generated module is kept for a look.
func TestBuildFailureKeepsModule(t *testing.T) {
	root := checkoutForBuild(t)
	broken := writeModule(t, "example.com/sluice-broken", "package broken\n\nvar x int = \"not an int\"\n")
	var stdout, stderr bytes.Buffer
	code := run(buildContext(t), []string{"--with", coreModule + "=" + root, "--with", "example.com/sluice-broken=" + broken, "-o", filepath.Join(t.TempDir(), "sluice")}, buildEnv(), &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "hello.go:3:") || !strings.Contains(stderr.String(), "go build") {
		t.Fatalf("sluice-build = %d\n%s", code, stderr.String())
	}
	m := regexp.MustCompile(`generated module is kept in (\S+)`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("the kept module is not named:\n%s", stderr.String())
	}
	t.Cleanup(func() { os.RemoveAll(m[1]) })
	if b, err := os.ReadFile(filepath.Join(m[1], "main.go")); err != nil || !strings.Contains(string(b), `_ "example.com/sluice-broken"`) {
		t.Errorf("kept main.go: %v\n%s", err, b)
	}
}
