package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// The plugins in this repository's plugins/ build into a binary through
// sluice-build against this checkout (as CI builds them), are listed as
// plugins with their modules, and their example configs validate.
func TestBuildWithRepositoryPlugins(t *testing.T) {
	root := checkoutForBuild(t)
	plugins := []struct {
		dir, module, component, example string
	}{
		{"httpjson", coreModule + "/plugins/httpjson", "http_json_source", "examples/deliveries.hcl"},
		{"exec", coreModule + "/plugins/exec", "exec_source", "examples/exec.hcl"},
	}
	args := []string{"--with", coreModule + "=" + root}
	for _, p := range plugins {
		args = append(args, "--with", p.module+"="+filepath.Join(root, "plugins", p.dir))
	}
	bin := filepath.Join(t.TempDir(), "sluice-plugins")
	args = append(args, "-o", bin)
	var stdout, stderr bytes.Buffer
	if code := run(buildContext(t), args, buildEnv(), &stdout, &stderr); code != 0 {
		t.Fatalf("sluice-build = %d\n%s%s", code, stdout.String(), stderr.String())
	}

	out, err := exec.Command(bin, "components", "--json").Output()
	if err != nil {
		t.Fatalf("components --json: %v", err)
	}
	var docs []struct{ Name, Kind, Module string }
	if err := json.Unmarshal(out, &docs); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, d := range docs {
		kinds[d.Name] = d.Kind + " " + d.Module
	}
	for _, p := range plugins {
		if want := "plugin " + p.module; kinds[p.component] != want {
			t.Errorf("%s is %q, want %q", p.component, kinds[p.component], want)
		}
		cmd := exec.Command(bin, "validate", filepath.Join(root, "plugins", p.dir, p.example))
		// The httpjson example reads its token with env().
		cmd.Env = append(os.Environ(), "CI_API_TOKEN=test-token")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "valid") {
			t.Errorf("validate %s: %v\n%s", p.example, err, out)
		}
	}
	aggregateThroughBinary(t, bin)

	// A config error in a plugin's block is a diagnostic of the binary.
	bad := filepath.Join(t.TempDir(), "bad.hcl")
	if err := os.WriteFile(bad, []byte(`exec_source "x" { command = ["sh", "-c", "echo"] }`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "validate", bad).CombinedOutput(); err == nil || !strings.Contains(string(out), `"sh" is not a path`) {
		t.Errorf("validate of a bad exec_source: %v\n%s", err, out)
	}
}

// aggregateThroughBinary runs the built binary's http_json_source against a
// paginated API (23 pipelines over 4 pages linked by rel="next"; page 1
// alone counts 4/3/2/1 by status) and checks that aggregate = "count"
// exports the totals of every page: 10/7/3/3.
func aggregateThroughBinary(t *testing.T, bin string) {
	pages := [][]string{
		{"success", "success", "success", "success", "failed", "failed", "failed", "running", "running", "canceled"},
		{"success", "success", "success", "failed", "failed", "canceled"},
		{"success", "success", "failed", "running"},
		{"success", "failed", "canceled"},
	}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("page"))
		if err != nil {
			n = 1
		}
		if n < 1 || n > len(pages) {
			http.NotFound(w, r)
			return
		}
		if n < len(pages) {
			w.Header().Set("Link", fmt.Sprintf(`</pipelines?page=%d>; rel="next"`, n+1))
		}
		var items []string
		for _, st := range pages[n-1] {
			items = append(items, fmt.Sprintf(`{"status": %q}`, st))
		}
		fmt.Fprintf(w, `{"pipelines": [%s]}`, strings.Join(items, ","))
	}))
	defer api.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agg.hcl")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
http_json_source "ci" {
  url      = %q
  interval = "1s"
  timeout  = "500ms"
  metric "ci_pipelines" {
    aggregate = "count"
    series    = [for p in body.pipelines : { labels = { status = p.status } }]
  }
}
metrics_sink "ci" {
  inputs = [http_json_source.ci.metrics]
  path   = "/metrics/ci"
}
`, api.URL+"/pipelines")), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := pipelinetest.FreeTCPAddr(t)
	logs := &pipelinetest.Buffer{}
	cmd := exec.Command(bin, "run", "--server.http.listen-addr", addr, "--storage.path", filepath.Join(dir, "data"), cfg)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("sluice output:\n%s", logs.String())
		}
	}()
	want := []string{`ci_pipelines{status="success"} 10`, `ci_pipelines{status="failed"} 7`,
		`ci_pipelines{status="running"} 3`, `ci_pipelines{status="canceled"} 3`}
	var body string
	pipelinetest.Eventually(t, time.Minute, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics/ci")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				return false
			}
		}
		return true
	}, "the totals over every page: want %q, scrape:\n%s", want, body)
}
