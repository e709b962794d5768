package sink_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sluicehq/sluice/components/sink"
	"github.com/sluicehq/sluice/internal/testing/testcerts"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// webFiles writes a CA, a server certificate (serial 1) and two web config
// files into a temporary directory: tls.yml (TLS + basic auth for user
// "prom", password "s3cret") and auth.yml (basic auth only, user "plain").
type webFiles struct {
	dir, tlsYML, authYML, cert, key string
	ca                              *testcerts.CA
}

func newWebFiles(t *testing.T) *webFiles {
	t.Helper()
	dir := t.TempDir()
	w := &webFiles{dir: dir, ca: testcerts.NewCA(t), cert: filepath.Join(dir, "server.crt"), key: filepath.Join(dir, "server.key"),
		tlsYML: filepath.Join(dir, "tls.yml"), authYML: filepath.Join(dir, "auth.yml")}
	w.ca.WriteServer(t, 1, w.cert, w.key)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// Relative certificate paths are relative to the web config file.
	write(t, w.tlsYML, fmt.Sprintf("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prom: %s\n", hash))
	write(t, w.authYML, fmt.Sprintf("basic_auth_users:\n  plain: %s\n", hash))
	return w
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// client trusts only the test CA and keeps no connections between
// requests, so that each request makes a handshake.
func (w *webFiles) client() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: w.ca.Pool()},
		DisableKeepAlives: true,
	}}
}

func authGet(t *testing.T, c *http.Client, url, user, pass string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func listenAddr(t *testing.T, h *pipelinetest.Harness) string {
	t.Helper()
	c := h.Component.(*sink.Component)
	var addr string
	pipelinetest.Eventually(t, 5*time.Second, func() bool { addr = c.Addr(); return addr != "" }, "never listened")
	return addr
}

// The sink's own server with TLS and basic auth from web_config_file:
// credentials are checked, plain HTTP is refused, and a rotated
// certificate is presented by the next connection without a restart.
func TestListenWithWebConfigFile(t *testing.T) {
	w := newWebFiles(t)
	a := counterReg(t, "a_total", 1)
	h := pipelinetest.New(t, "metrics_sink", "inputs = [test.a]\nlisten = \"127.0.0.1:0\"\nweb_config_file = \"tls.yml\"",
		pipelinetest.WithGatherer("a", a), pipelinetest.WithConfigDir(w.dir))
	h.Start()
	addr := listenAddr(t, h)
	url := "https://" + addr + sink.ListenPath
	c := w.client()

	if code, body, _ := authGet(t, c, url, "prom", "s3cret"); code != 200 || !strings.Contains(body, "a_total 1") {
		t.Fatalf("right password: %d %q", code, body)
	}
	for _, tc := range []struct{ user, pass string }{{"prom", "wrong"}, {"nobody", "s3cret"}, {"", ""}} {
		code, body, hdr := authGet(t, c, url, tc.user, tc.pass)
		if code != 401 || strings.Contains(body, "a_total") || hdr.Get("WWW-Authenticate") != "Basic" {
			t.Errorf("user %q password %q: %d %q %v, want 401 with WWW-Authenticate: Basic", tc.user, tc.pass, code, body, hdr)
		}
	}
	// Plain HTTP to the TLS port: Go's TLS server recognizes an HTTP
	// request in place of a ClientHello and answers 400 in plain text.
	code, body, _ := authGet(t, &http.Client{Timeout: 30 * time.Second}, "http://"+addr+sink.ListenPath, "prom", "s3cret")
	if code != 400 || !strings.Contains(body, "Client sent an HTTP request to an HTTPS server") || strings.Contains(body, "a_total") {
		t.Errorf("plain HTTP to the TLS port: %d %q", code, body)
	}

	if got, err := w.ca.PeerSerial(addr); err != nil || got != 1 {
		t.Fatalf("serial before rotation: %d, %v", got, err)
	}
	w.ca.WriteServer(t, 2, w.cert, w.key)
	// Read on the next handshake: no waiting needed.
	if got, err := w.ca.PeerSerial(addr); err != nil || got != 2 {
		t.Fatalf("serial after rotation: %d, %v; want 2 without a restart", got, err)
	}
	if code, _, _ := authGet(t, c, url, "prom", "s3cret"); code != 200 {
		t.Fatalf("after rotation: %d", code)
	}
}

// Without web_config_file the sink's own server uses the agent's
// (--web.config.file); web_config_file overrides it, and changing it
// restarts the server on the same address with the new file.
func TestAgentWebConfigIsTheDefault(t *testing.T) {
	w := newWebFiles(t)
	a := counterReg(t, "a_total", 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fixed := ln.Addr().String()
	ln.Close()
	h := pipelinetest.New(t, "metrics_sink", fmt.Sprintf("inputs = [test.a]\nlisten = %q", fixed),
		pipelinetest.WithGatherer("a", a), pipelinetest.WithConfigDir(w.dir), pipelinetest.WithWebConfigFile(w.tlsYML))
	h.Start()
	addr := listenAddr(t, h)
	c := w.client()
	if code, _, _ := authGet(t, c, "https://"+addr+sink.ListenPath, "prom", "s3cret"); code != 200 {
		t.Fatalf("agent's web config (TLS): %d", code)
	}
	if code, _, _ := authGet(t, c, "https://"+addr+sink.ListenPath, "prom", "nope"); code != 401 {
		t.Fatalf("agent's web config, wrong password: %d", code)
	}

	if err := h.Update(fmt.Sprintf("inputs = [test.a]\nlisten = %q\nweb_config_file = \"auth.yml\"", fixed)); err != nil {
		t.Fatal(err)
	}
	addr = listenAddr(t, h)
	if addr != fixed {
		t.Fatalf("address moved: %s -> %s", fixed, addr)
	}
	if code, body, _ := authGet(t, c, "http://"+addr+sink.ListenPath, "plain", "s3cret"); code != 200 || !strings.Contains(body, "a_total 1") {
		t.Fatalf("own web config (plain HTTP, basic auth): %d %q", code, body)
	}
	if code, _, _ := authGet(t, c, "http://"+addr+sink.ListenPath, "prom", "s3cret"); code != 401 {
		t.Fatalf("user of the agent's file accepted by the sink's own: %d", code)
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestBadWebConfigFile(t *testing.T) {
	w := newWebFiles(t)
	write(t, filepath.Join(w.dir, "badhash.yml"), "basic_auth_users:\n  prom: not-a-bcrypt-hash\n")
	write(t, filepath.Join(w.dir, "nocert.yml"), "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n")
	write(t, filepath.Join(w.dir, "typo.yml"), "basic_auth_user:\n  prom: x\n")
	for _, tc := range []struct{ name, body, want string }{
		{"without listen", "inputs = []\nweb_config_file = \"tls.yml\"", "set listen too"},
		{"missing file", "inputs = []\nlisten = \"127.0.0.1:0\"\nweb_config_file = \"nope.yml\"", "nope.yml"},
		{"bad hash", "inputs = []\nlisten = \"127.0.0.1:0\"\nweb_config_file = \"badhash.yml\"", "hash"},
		{"missing certificate", "inputs = []\nlisten = \"127.0.0.1:0\"\nweb_config_file = \"nocert.yml\"", "missing.crt"},
		{"unknown key", "inputs = []\nlisten = \"127.0.0.1:0\"\nweb_config_file = \"typo.yml\"", "basic_auth_user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := pipelinetest.Decode(t, "metrics_sink", tc.body, pipelinetest.WithConfigDir(w.dir))
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
				t.Fatalf("diagnostics %v, want one mentioning %q", diags, tc.want)
			}
		})
	}
}
