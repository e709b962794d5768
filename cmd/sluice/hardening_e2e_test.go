package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/testing/realpart"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// Regression tests for issue 7 (hardening), through the built binary.

// runBinary runs sluice to completion and returns its exit code and output.
func runBinary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err == nil {
		return 0, string(out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("running sluice: %v", err)
	return 0, ""
}

// startAgentIn starts sluice on the config at path (written first) without
// waiting for it to be ready; stderr goes to logTo when not nil.
func startAgentIn(t *testing.T, path, config string, logTo io.Writer, extra ...string) *agent {
	t.Helper()
	return launch(t, config, launchOpts{config: path, logTo: logTo, args: extra})
}

func (a *agent) post(path string) (int, string) {
	resp, err := http.Post("http://"+a.addr+path, "", nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Item 2: an empty or comment-only config is refused at start, on reload
// and by validate, unless --config.allow-empty.
func TestEmptyConfigRefused(t *testing.T) {
	dir := t.TempDir()
	for _, content := range []string{"", "# config to come\n"} {
		cfg := filepath.Join(dir, "empty.hcl")
		if err := os.WriteFile(cfg, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, out := runBinary(t, "validate", cfg); code != 1 || !strings.Contains(out, "No components in the config") {
			t.Errorf("validate of %q = %d:\n%s", content, code, out)
		}
		if code, out := runBinary(t, "validate", "--config.allow-empty", cfg); code != 0 {
			t.Errorf("validate --config.allow-empty of %q = %d:\n%s", content, code, out)
		}
		code, out := runBinary(t, "run", "--server.http.listen-addr", pipelinetest.FreeTCPAddr(t), "--storage.path", filepath.Join(dir, "data"), cfg)
		if code != 1 || !strings.Contains(out, "No components in the config") {
			t.Errorf("run with %q = %d, want 1 with the diagnostic:\n%s", content, code, out)
		}
	}

	// Allowed: ready without components.
	a := startAgentIn(t, filepath.Join(t.TempDir(), "sluice.hcl"), "# nothing\n", nil, "--config.allow-empty")
	a.waitFor("ready with an allowed empty config", func() bool { code, _ := a.get("/-/ready"); return code == 200 })

	// Truncating the running config keeps the pipeline and says so.
	b := startAgent(t, e2eConfigV1)
	b.scrapeHas("/metrics/e2e", []string{"sluice_build_info{"}, nil)
	b.write("")
	b.scrapeHas("/metrics", []string{"sluice_config_last_reload_successful 0"}, nil)
	if code, _ := b.get("/metrics/e2e"); code != 200 {
		t.Errorf("the sink answers %d after the config was truncated; want the running pipeline kept", code)
	}
	if code, _ := b.get("/-/ready"); code != 200 {
		t.Errorf("/-/ready = %d after a rejected empty reload, want 200", code)
	}
	if !strings.Contains(b.out.String(), "No components in the config") {
		t.Errorf("the rejection is not logged:\n%s", b.out.String())
	}
}

// Item 3: the reproductions of "secrets in diagnostics", through sluice
// validate, the reload log and the body of POST /-/reload.
var secretReproductions = map[string]string{
	"syntax error on the dsn line":     "postgres_source \"db\" {\n  dsn = \"postgres://u:PASSWORD@h/db\n}\n",
	"syntax error before the dsn line": "postgres_source \"db\" {\n  max_conns = \n  dsn = \"postgres://u:PASSWORD@h/db\"\n}\n",
	"misspelled attribute":             "postgres_source \"db\" {\n  dsnn = \"postgres://u:PASSWORD@h/db\"\n}\n",
	"dsn set twice":                    "postgres_source \"db\" {\n  dsn = \"postgres://u:PASSWORD@h/db\"\n  dsn = \"postgres://u:PASSWORD@h/db\"\n}\n",
	"function echoing its argument":    "postgres_source \"db\" {\n  dsn = tonumber(\"postgres://u:PASSWORD@h/db\")\n}\n",
	"key-value dsn echoed":             "postgres_source \"db\" {\n  dsn = tonumber(\"host=h password=PASSWORD\")\n}\n",
	"password in another block":        "metrics_sink \"s\" {\n  inputs = [agent.metrics]\n  path = tonumber(\"https://bob:PASSWORD@example.com\")\n}\n",
}

func TestSecretsNotInValidateOutput(t *testing.T) {
	for name, src := range secretReproductions {
		t.Run(name, func(t *testing.T) {
			cfg := writeTemp(t, "db.hcl", src)
			code, out := runBinary(t, "validate", cfg)
			if code != 1 || !strings.Contains(out, "db.hcl:") {
				t.Fatalf("validate = %d, want 1 with diagnostics:\n%s", code, out)
			}
			if strings.Contains(out, "PASSWORD") {
				t.Errorf("validate prints the password:\n%s", out)
			}
		})
	}
	// sluice fmt renders syntax errors the same way.
	cfg := writeTemp(t, "db.hcl", secretReproductions["syntax error on the dsn line"])
	if code, out := runBinary(t, "fmt", cfg); code != 1 || strings.Contains(out, "PASSWORD") || !strings.Contains(out, "db.hcl:") {
		t.Errorf("fmt = %d:\n%s", code, out)
	}
}

func TestSecretsNotInReloadLogOrResponse(t *testing.T) {
	a := startAgent(t, e2eConfigV1, "--web.enable-lifecycle")
	for name, src := range secretReproductions {
		a.write(src)
		code, body := a.post("/-/reload")
		if code != 400 || !strings.Contains(body, "sluice.hcl:") {
			t.Errorf("%s: POST /-/reload = %d:\n%s", name, code, body)
		}
		if strings.Contains(body, "PASSWORD") {
			t.Errorf("%s: the 400 body holds the password:\n%s", name, body)
		}
	}
	// Every rejection was logged (by the POSTs and by the watcher).
	a.waitFor("the rejections to be logged", func() bool {
		return strings.Count(a.out.String(), "config reload failed") >= len(secretReproductions)
	})
	if strings.Contains(a.out.String(), "PASSWORD") {
		t.Errorf("the log holds the password:\n%s", a.out.String())
	}
}

// Item 5: the config directory replaced (mv cfg cfg.old; mkdir cfg; cp),
// then edited, repeatedly: every edit applies, and the re-watch is logged.
func TestConfigDirectoryReplaced(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "cfg")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// No periodic check: the file system watch alone must recover.
	a := startAgentIn(t, filepath.Join(dir, "sluice.hcl"), e2eConfigV1, nil, "--config.check-interval", "0")
	a.scrapeHas("/metrics/e2e", []string{"sluice_build_info{"}, []string{`pipeline="v2"`})

	if err := os.Rename(dir, filepath.Join(root, "cfg.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(filepath.Join(root, "cfg.old", "sluice.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sluice.hcl"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	a.waitFor("the re-watch to be logged", func() bool {
		return strings.Contains(a.out.String(), "config directory replaced; watching the new one")
	})
	for i := range 3 {
		if i%2 == 0 {
			a.write(e2eConfigV2)
			a.scrapeHas("/metrics/e2e", []string{`pipeline="v2"`}, nil)
		} else {
			a.write(e2eConfigV1)
			a.scrapeHas("/metrics/e2e", []string{"sluice_build_info{"}, []string{`pipeline="v2"`})
		}
	}
}

// Item 6: the agent's log file in the config directory: a broken config is
// rejected once, not again at every line the rejection writes to the log.
func TestLogFileInConfigDirectoryNoReloadLoop(t *testing.T) {
	dir := t.TempDir()
	logFile, err := os.Create(filepath.Join(dir, "sluice.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	a := startAgentIn(t, filepath.Join(dir, "sluice.hcl"), e2eConfigV1, logFile)
	a.waitFor("ready", func() bool { code, _ := a.get("/-/ready"); return code == 200 })
	_, before := a.get("/metrics")
	ignoredBefore := metricValue(t, before, `sluice_config_watcher_events_total{relevant="false"}`)

	a.write("relabel \"self\" {\n  inptu = agent.metrics\n}\n")
	a.scrapeHas("/metrics", []string{`sluice_config_reloads_total{result="failure"} 1`}, nil)
	// The rejection's log lines are file events in the watched directory;
	// wait until the watcher has seen (and ignored) some.
	a.waitFor("the log writes to be seen and ignored", func() bool {
		_, body := a.get("/metrics")
		return metricValue(t, body, `sluice_config_watcher_events_total{relevant="false"}`) >= ignoredBefore+1
	})
	// A fix still applies, and no retry happened in between.
	a.write(e2eConfigV1)
	a.scrapeHas("/metrics", []string{`sluice_config_reloads_total{result="success"} 2`}, nil)
	if _, body := a.get("/metrics"); !strings.Contains(body, `sluice_config_reloads_total{result="failure"} 1`) {
		t.Errorf("the broken config was retried:\n%s", grepLines(body, "sluice_config_reloads_total"))
	}
}

func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	return 0
}

// Item 8: a config path that cannot be a config exits 1 at start, with a
// message naming the problem.
func TestRunExitsOnUnreadableConfig(t *testing.T) {
	dir := t.TempDir()
	loop := filepath.Join(dir, "loop.hcl")
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		filepath.Join(dir, "missing.hcl"): "no such file or directory",
		dir:                               "is a directory",
		loop:                              "too many levels of symbolic links",
	} {
		code, out := runBinary(t, "run", "--server.http.listen-addr", pipelinetest.FreeTCPAddr(t), "--storage.path", filepath.Join(dir, "data"), path)
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("run %s = %d, want 1 with %q:\n%s", path, code, want, out)
		}
		if code, out := runBinary(t, "validate", path); code != 1 || !strings.Contains(out, want) {
			t.Errorf("validate %s = %d, want 1 with %q:\n%s", path, code, want, out)
		}
	}
}

// Item 9: listen-address conflicts are load-time diagnostics.
func TestValidateListenConflicts(t *testing.T) {
	for name, tt := range map[string]struct {
		src, want string
		args      []string
	}{
		"two sinks on one port": {
			src:  "metrics_sink \"a\" {\n  inputs = [agent.metrics]\n  listen = \":9102\"\n}\nmetrics_sink \"b\" {\n  inputs = [agent.metrics]\n  listen = \"127.0.0.1:9102\"\n}\n",
			want: "c.hcl:7:12: error: Listen address used twice",
		},
		"sink on the agent's port": {
			src:  "metrics_sink \"a\" {\n  inputs = [agent.metrics]\n  listen = \":9470\"\n}\n",
			want: "agent's own HTTP server",
		},
		"sink on the agent's port given by flag": {
			src:  "metrics_sink \"a\" {\n  inputs = [agent.metrics]\n  listen = \"localhost:8080\"\n}\n",
			args: []string{"--server.http.listen-addr", "127.0.0.1:8080"},
			want: "agent's own HTTP server",
		},
		"sink on the statsd tcp port": {
			src:  "statsd_receiver \"app\" {\n  listen_tcp = \":9125\"\n}\nmetrics_sink \"a\" {\n  inputs = [statsd_receiver.app.metrics]\n  listen = \":9125\"\n}\n",
			want: "statsd_receiver.app already claims",
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := writeTemp(t, "c.hcl", tt.src)
			code, out := runBinary(t, append(append([]string{"validate"}, tt.args...), cfg)...)
			if code != 1 || !strings.Contains(out, tt.want) {
				t.Errorf("validate = %d, want 1 with %q:\n%s", code, tt.want, out)
			}
		})
	}
	// statsd on UDP and a sink on TCP share a port number without conflict.
	cfg := writeTemp(t, "ok.hcl", "statsd_receiver \"app\" {\n  listen_udp = \":9125\"\n}\nmetrics_sink \"a\" {\n  inputs = [statsd_receiver.app.metrics]\n  listen = \":9125\"\n}\n")
	if code, out := runBinary(t, "validate", cfg); code != 0 {
		t.Errorf("udp and tcp on one port: validate = %d:\n%s", code, out)
	}
}

// Item 9: /-/ready is 503 while a sink cannot bind its socket, and 200 once
// it could.
func TestReadyWhileSinkCannotBind(t *testing.T) {
	realpart.SkipShortSlow(t, "waits for a sink to retry binding after its restart backoff")
	holder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	addr := holder.Addr().String()
	cfg := fmt.Sprintf("metrics_sink \"own\" {\n  inputs = [agent.metrics]\n  listen = %q\n}\n", addr)
	a := startAgentIn(t, filepath.Join(t.TempDir(), "sluice.hcl"), cfg, nil)
	a.waitFor("/-/ready to report the sink", func() bool {
		code, body := a.get("/-/ready")
		return code == 503 && strings.Contains(body, "metrics_sink.own")
	})
	holder.Close()
	a.waitFor("ready once the sink is bound", func() bool { code, _ := a.get("/-/ready"); return code == 200 })
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the sink answers %d once ready", resp.StatusCode)
	}
}

// Item 10: duplicate object keys are diagnostics; agent endpoints answer
// 405 with Allow to other methods.
func TestDuplicateKeysAndMethods(t *testing.T) {
	cfg := writeTemp(t, "dup.hcl", "metrics_sink \"a\" {\n  inputs = [agent.metrics]\n  const_labels = { a = \"x\", a = \"y\" }\n}\n")
	if code, out := runBinary(t, "validate", cfg); code != 1 || !strings.Contains(out, "dup.hcl:3:29: error: Duplicate key") {
		t.Errorf("validate = %d, want the duplicate key at 3:29:\n%s", code, out)
	}

	a := startAgent(t, e2eConfigV1)
	for _, path := range []string{"/-/healthy", "/-/ready", "/api/v0/components", "/metrics"} {
		for _, m := range []string{"POST", "PUT", "DELETE", "TRACE"} {
			req, _ := http.NewRequest(m, "http://"+a.addr+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s = %d Allow %q, want 405 \"GET, HEAD\"", m, path, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
		if resp, err := http.Head("http://" + a.addr + path); err != nil || resp.StatusCode != 200 {
			t.Errorf("HEAD %s: %v", path, err)
		}
	}
}
