package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sluicehq/sluice/internal/testing/testcerts"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// webSetup is a CA, a server certificate (serial 1) and a web config with
// TLS and basic auth (user prom, password s3cret), in a directory.
type webSetup struct {
	dir, webYML, cert, key, caFile string
	ca                             *testcerts.CA
	hash                           string
}

func newWebSetup(t *testing.T) *webSetup {
	t.Helper()
	dir := t.TempDir()
	w := &webSetup{dir: dir, ca: testcerts.NewCA(t), webYML: filepath.Join(dir, "web.yml"),
		cert: filepath.Join(dir, "server.crt"), key: filepath.Join(dir, "server.key"), caFile: filepath.Join(dir, "ca.crt")}
	w.ca.WriteCA(t, w.caFile)
	w.ca.WriteServer(t, 1, w.cert, w.key)
	h, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	w.hash = string(h)
	w.writeWeb(t, w.good())
	return w
}

func (w *webSetup) good() string {
	return fmt.Sprintf("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prom: %s\n", w.hash)
}

func (w *webSetup) writeWeb(t *testing.T, content string) {
	t.Helper()
	tmp := w.webYML + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, w.webYML); err != nil {
		t.Fatal(err)
	}
}

// do sends a GET with optional basic auth through c, a fresh connection
// each time; code 0 means the request failed (body says why).
func doGet(c *http.Client, u, user, pass string) (int, string) {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return 0, err.Error()
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestWebConfigTLSAndBasicAuth runs the agent with --web.config.file
// (TLS and basic auth) and --web.probe-listen-address, and a real
// Prometheus that scrapes a metrics_sink's own listener (which inherits
// the agent's web config) over TLS with basic auth, and the same target
// with a wrong password. It checks: the right password scrapes, the
// wrong one gets 401 (seen by Prometheus as the target's error), plain
// HTTP to the TLS ports is refused, the probe listener answers
// /-/healthy and /-/ready without auth and nothing else, a certificate
// rotated on disk is presented by the next connection of both listeners
// and Prometheus keeps scraping through it, and a broken web config file
// is reported at reload.
func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	prometheusBinary(t) // skip early, before starting anything
	w := newWebSetup(t)
	sinkAddr := pipelinetest.FreeTCPAddr(t)
	probeAddr := pipelinetest.FreeTCPAddr(t)
	logs := &pipelinetest.Buffer{}
	a := startAgentIn(t, filepath.Join(t.TempDir(), "sluice.hcl"), fmt.Sprintf(`
metrics_sink "own" {
  inputs = [agent.metrics]
  listen = %q
}
`, sinkAddr), logs, "--web.config.file", w.webYML, "--web.probe-listen-address", probeAddr, "--web.enable-lifecycle")

	plain := &http.Client{Timeout: 30 * time.Second}
	secure := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: w.ca.Pool()}, DisableKeepAlives: true}}

	// The probe listener: plain HTTP, no auth, the two probe paths only.
	a.waitFor("ready on the probe listener", func() bool { code, _ := doGet(plain, "http://"+probeAddr+"/-/ready", "", ""); return code == 200 })
	if code, body := doGet(plain, "http://"+probeAddr+"/-/healthy", "", ""); code != 200 || !strings.Contains(body, "healthy") {
		t.Errorf("probe listener /-/healthy: %d %q", code, body)
	}
	for _, p := range []string{"/metrics", "/api/v0/components", "/-/reload", "/"} {
		if code, body := doGet(plain, "http://"+probeAddr+p, "", ""); code != 404 {
			t.Errorf("probe listener %s: %d %q, want 404", p, code, body)
		}
	}

	// The agent's server and the sink's listener: TLS and basic auth.
	for _, base := range []string{"https://" + a.addr, "https://" + sinkAddr} {
		path := "/-/ready"
		if strings.Contains(base, sinkAddr) {
			path = "/metrics"
		}
		a.waitFor(base+" to serve", func() bool { code, _ := doGet(secure, base+path, "prom", "s3cret"); return code == 200 })
		for _, cred := range [][2]string{{"prom", "wrong"}, {"", ""}, {"other", "s3cret"}} {
			if code, body := doGet(secure, base+path, cred[0], cred[1]); code != 401 {
				t.Errorf("%s%s as %q/%q: %d %q, want 401", base, path, cred[0], cred[1], code, body)
			}
		}
		hp := "http://" + strings.TrimPrefix(base, "https://") + path
		if code, body := doGet(plain, hp, "prom", "s3cret"); code != 400 || !strings.Contains(body, "Client sent an HTTP request to an HTTPS server") {
			t.Errorf("plain HTTP %s: %d %q, want 400 'Client sent an HTTP request to an HTTPS server'", hp, code, body)
		}
	}
	// The status UI is served by the same handler, so the same auth guards
	// it: its pages and its JSON need the credentials.
	for _, p := range []string{"/", "/status.json"} {
		if code, body := doGet(secure, "https://"+a.addr+p, "prom", "wrong"); code != 401 {
			t.Errorf("status UI %s with a wrong password: %d %q, want 401", p, code, body)
		}
		if code, body := doGet(secure, "https://"+a.addr+p, "prom", "s3cret"); code != 200 {
			t.Errorf("status UI %s with credentials: %d %q, want 200", p, code, body)
		}
	}
	// Probes that carry credentials (the way Prometheus itself is probed
	// behind basic auth) work on the main port too.
	if code, _ := doGet(secure, "https://"+a.addr+"/-/healthy", "prom", "s3cret"); code != 200 {
		t.Errorf("/-/healthy with credentials: %d", code)
	}

	// A real Prometheus scrapes the sink over TLS with basic auth, and the
	// same target with a wrong password.
	promConfig := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: sluice_tls
    scheme: https
    tls_config:
      ca_file: %[1]s
    basic_auth:
      username: prom
      password: s3cret
    static_configs:
      - targets: [%[2]q]
  - job_name: sluice_wrong_password
    scheme: https
    tls_config:
      ca_file: %[1]s
    basic_auth:
      username: prom
      password: wrong
    static_configs:
      - targets: [%[2]q]
`, w.caFile, sinkAddr)
	prom := newPromServer(t, promConfig)
	prom.start()
	promAddr := prom.addr
	type target struct {
		Labels     map[string]string `json:"labels"`
		Health     string            `json:"health"`
		LastError  string            `json:"lastError"`
		LastScrape time.Time         `json:"lastScrape"`
	}
	targets := func() (map[string]target, error) {
		resp, err := plain.Get("http://" + promAddr + "/api/v1/targets?state=active")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				ActiveTargets []target `json:"activeTargets"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return nil, err
		}
		m := map[string]target{}
		for _, tg := range r.Data.ActiveTargets {
			m[tg.Labels["job"]] = tg
		}
		return m, nil
	}
	// waitTargets waits until ok accepts both targets' state.
	waitTargets := func(what string, ok func(good, bad target) bool) {
		t.Helper()
		var last map[string]target
		a.waitFor(what, func() bool {
			select {
			case err := <-prom.exited:
				prom.exited <- err
				t.Fatalf("prometheus exited: %v", err)
			default:
			}
			m, err := targets()
			if err != nil {
				return false
			}
			last = m
			return ok(m["sluice_tls"], m["sluice_wrong_password"])
		})
		t.Logf("%s: %+v", what, last)
	}
	waitTargets("Prometheus to scrape over TLS and be refused with a wrong password", func(good, bad target) bool {
		return good.Health == "up" && good.LastError == "" && bad.Health == "down" && strings.Contains(bad.LastError, "401")
	})
	// The samples arrived.
	a.waitFor("sluice_build_info in Prometheus", func() bool {
		resp, err := plain.Get("http://" + promAddr + "/api/v1/query?" + url.Values{"query": {`sluice_build_info{job="sluice_tls"}`}}.Encode())
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `"job":"sluice_tls"`)
	})

	// Rotation: new certificate and key on disk; the next connection to
	// either listener presents the new serial, without a restart.
	for _, addr := range []string{a.addr, sinkAddr} {
		if got, err := w.ca.PeerSerial(addr); err != nil || got != 1 {
			t.Fatalf("%s: serial %d (%v) before rotation, want 1", addr, got, err)
		}
	}
	w.ca.WriteServer(t, 2, w.cert, w.key)
	rotated := time.Now()
	for _, addr := range []string{a.addr, sinkAddr} {
		if got, err := w.ca.PeerSerial(addr); err != nil || got != 2 {
			t.Fatalf("%s: serial %d (%v) after rotation, want 2", addr, got, err)
		}
	}
	// Prometheus keeps a connection open across scrapes; its scrapes after
	// the rotation still succeed (a new connection would see serial 2).
	waitTargets("a successful scrape after the rotation", func(good, _ target) bool {
		return good.Health == "up" && good.LastError == "" && good.LastScrape.After(rotated.Add(time.Second))
	})

	// A broken web config file: reported when it is written (the watcher
	// watches it) and at every reload; the listeners refuse until fixed.
	w.writeWeb(t, "basic_auth_users:\n  prom: not-a-hash\n")
	a.waitFor("the broken web config to be reported", func() bool {
		return strings.Contains(logs.String(), "web config file is invalid")
	})
	if code, _ := doGet(secure, "https://"+a.addr+"/-/ready", "prom", "s3cret"); code == 200 {
		t.Error("served with a broken web config file")
	}
	w.writeWeb(t, w.good())
	a.waitFor("the fixed web config to be reported", func() bool {
		return strings.Contains(logs.String(), "web config file is valid again")
	})
	if code, _ := doGet(secure, "https://"+a.addr+"/-/ready", "prom", "s3cret"); code != 200 {
		t.Errorf("after the fix: %d", code)
	}
	body := ""
	a.waitFor("the check metric", func() bool {
		var code int
		code, body = doGet(secure, "https://"+a.addr+"/metrics", "prom", "s3cret")
		return code == 200
	})
	if !strings.Contains(body, "sluice_web_config_last_check_successful 1") {
		t.Errorf("sluice_web_config_last_check_successful is not 1 after the fix:\n%s", grepLines(body, "web_config"))
	}
}

// A bad web config file stops the agent at start with a clear error, and
// fails `sluice validate --web.config.file`; a good one validates.
func TestWebConfigInvalidAtStart(t *testing.T) {
	w := newWebSetup(t)
	cfg := writeTemp(t, "sluice.hcl", "metrics_sink \"a\" {\n  inputs = [agent.metrics]\n}\n")
	for _, tc := range []struct{ name, content, want string }{
		{"bad hash", "basic_auth_users:\n  prom: not-a-hash\n", "hash"},
		{"unknown key", "tls_server_config:\n  cert_fil: server.crt\n", "cert_fil"},
		{"missing key", "tls_server_config:\n  cert_file: server.crt\n", "missing one of key or key_file"},
		{"missing certificate file", "tls_server_config:\n  cert_file: gone.crt\n  key_file: server.key\n", "gone.crt"},
		{"not YAML", "{{{", "yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.writeWeb(t, tc.content)
			code, out := runBinary(t, "run", "--server.http.listen-addr", pipelinetest.FreeTCPAddr(t), "--storage.path", t.TempDir(), "--web.config.file", w.webYML, cfg)
			if code != 1 || !strings.Contains(out, "web config file "+w.webYML) || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit 1 naming the file and %q", code, out, tc.want)
			}
			code, out = runBinary(t, "validate", "--web.config.file", w.webYML, cfg)
			if code != 1 || !strings.Contains(out, "web config file "+w.webYML) || !strings.Contains(out, tc.want) {
				t.Fatalf("validate: exit %d, output:\n%s\nwant exit 1 naming the file and %q", code, out, tc.want)
			}
		})
	}
	w.writeWeb(t, w.good())
	if code, out := runBinary(t, "validate", "--web.config.file", w.webYML, cfg); code != 0 {
		t.Fatalf("validate with a good web config: exit %d\n%s", code, out)
	}
	code, out := runBinary(t, "run", "--server.http.listen-addr", pipelinetest.FreeTCPAddr(t), "--storage.path", t.TempDir(), "--web.config.file", filepath.Join(w.dir, "nope.yml"), cfg)
	if code != 1 || !strings.Contains(out, "nope.yml") {
		t.Fatalf("missing file: exit %d, output:\n%s", code, out)
	}
}
