package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testing/realpart"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// The lite distribution links neither a Kubernetes client nor a
// PostgreSQL driver: they are most of the full binary's size and idle
// memory (issue 22).
func TestLiteHasNoKubernetesOrPostgres(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	has := func(prefix string) bool {
		for _, d := range deps {
			if strings.HasPrefix(d, prefix) {
				return true
			}
		}
		return false
	}
	// The list is the real one: the lite components are in it.
	for _, want := range []string{"github.com/sluicehq/sluice/components/statsd", "github.com/sluicehq/sluice/components/sink", "github.com/sluicehq/sluice/sluicecmd"} {
		if !has(want) {
			t.Fatalf("go list -deps lacks %s: %d packages", want, len(deps))
		}
	}
	for _, banned := range []string{"k8s.io/client-go", "k8s.io/api", "k8s.io/apimachinery", "github.com/jackc/pgx", "github.com/sluicehq/sluice/components/kubestatus", "github.com/sluicehq/sluice/components/postgres"} {
		if has(banned) {
			t.Errorf("the lite distribution depends on %s", banned)
		}
	}
}

// Through the built binary: sluice-lite lists its five components under
// its distribution's name, runs the sidecar's pipeline (statsd in, a sink
// out), and its status UI says it is the lite distribution.
func TestLiteBinary(t *testing.T) {
	realpart.SkipShortSlow(t, "builds and runs a second, race-instrumented binary (the lite distribution)")
	bin := filepath.Join(t.TempDir(), "sluice-lite")
	if out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "components").CombinedOutput()
	if err != nil {
		t.Fatalf("sluice-lite components: %v\n%s", err, out)
	}
	list := string(out)
	if !strings.HasPrefix(list, "Distribution lite: 5 components.\n") {
		t.Errorf("sluice-lite components does not start with its distribution:\n%s", list)
	}
	for _, c := range []string{"cache", "metrics_sink", "relabel", "statsd_receiver", "webhook_receiver"} {
		if !strings.Contains(list, "\n"+c+" ") {
			t.Errorf("sluice-lite components lacks %s:\n%s", c, list)
		}
	}
	for _, c := range []string{"kubernetes_status_source", "postgres_source", "remote_write"} {
		if strings.Contains(list, c) {
			t.Errorf("sluice-lite has %s:\n%s", c, list)
		}
	}

	// A config with a component the lite distribution lacks is refused,
	// saying where to look.
	dir := t.TempDir()
	pg := filepath.Join(dir, "pg.hcl")
	if err := os.WriteFile(pg, []byte("postgres_source \"db\" {\n  dsn = \"postgres://h/db\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin, "validate", pg).CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), `Blocks of type "postgres_source" are not expected here. This binary has no component of that type: sluice components lists those it has.`) {
		t.Errorf("sluice-lite validate of a postgres_source: exit %d:\n%s", code, out)
	}

	udp := pipelinetest.FreeUDPAddr(t)
	addr, sink := pipelinetest.FreeTCPAddr(t), pipelinetest.FreeTCPAddr(t)
	cfg := fmt.Sprintf(`
statsd_receiver "app" {
  listen_udp = %q
}
metrics_sink "default" {
  inputs = [statsd_receiver.app.metrics]
  listen = %q
}
`, udp, sink)
	if err := os.WriteFile(filepath.Join(dir, "sluice.hcl"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs pipelinetest.Buffer
	cmd := exec.Command(bin, "run", "--server.http.listen-addr", addr, "--storage.path", filepath.Join(dir, "data"), filepath.Join(dir, "sluice.hcl"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("sluice-lite output:\n%s", logs.String())
		}
	})
	c, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pipelinetest.Eventually(t, 30*time.Second, func() bool {
		_, _ = c.Write([]byte("lite.hits:1|c\n"))
		return strings.Contains(get(t, "http://"+sink+"/metrics"), "\nlite_hits ")
	}, "the statsd line scraped from the sink")
	if page := get(t, "http://"+addr+"/"); !strings.Contains(page, `<dt>Distribution</dt><dd id="distribution">lite</dd>`) {
		t.Errorf("the status UI does not name the lite distribution:\n%s", page)
	}
	if !strings.Contains(logs.String(), "distribution=lite") {
		t.Errorf("the start log does not name the distribution:\n%s", logs.String())
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = io.Copy(&b, resp.Body)
	return b.String()
}

// exitCode is the exit code of a command's error (0 for nil).
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
