package webhook_test

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

	"github.com/sluicehq/sluice/components/webhook"
	"github.com/sluicehq/sluice/internal/testing/testcerts"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// The own listener serves with the agent's web config (--web.config.file):
// here TLS, with the receiver's own token auth on top.
func TestOwnListenerUsesAgentWebConfig(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t)
	ca.WriteServer(t, 1, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	web := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(web, []byte("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := pipelinetest.New(t, "webhook_receiver", `
  listen = "127.0.0.1:0"
  auth { tokens = ["`+token+`"] }
  metric "m" { type = "gauge" }
`, pipelinetest.WithWebConfigFile(web))
	h.Start()
	c := h.Component.(*webhook.Component)
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return c.Addr() != "" }, "never listened")
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, DisableKeepAlives: true}}
	push := func(scheme string, cl *http.Client) (int, string) {
		req, _ := http.NewRequest("POST", scheme+"://"+c.Addr()+"/api/m/set", strings.NewReader("value=3"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := push("https", client); code != 204 {
		t.Fatalf("push over TLS = %d %s", code, body)
	}
	if code, body := push("http", &http.Client{Timeout: 30 * time.Second}); code != 400 || !strings.Contains(body, "HTTPS server") {
		t.Fatalf("plain HTTP to the TLS listener = %d %q, want 400", code, body)
	}
	if got, err := ca.PeerSerial(c.Addr()); err != nil || got != 1 {
		t.Fatalf("serial %d, %v", got, err)
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
}

// web_config_file overrides the agent's web config for the own listener;
// changing it restarts the server on the same address with the new file;
// the receiver's token is still required on top (X-Private-Token, since
// basic auth takes the Authorization header).
func TestOwnListenerWebConfigFile(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t)
	ca.WriteServer(t, 1, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"tls.yml":   "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n",
		"auth.yml":  fmt.Sprintf("basic_auth_users:\n  prom: %s\n", hash),
		"agent.yml": fmt.Sprintf("basic_auth_users:\n  agent: %s\n", hash),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fixed := ln.Addr().String()
	ln.Close()
	body := func(web string) string {
		return fmt.Sprintf("listen = %q\nweb_config_file = %q\nauth { tokens = [%q] }\nmetric \"m\" { type = \"gauge\" }\n", fixed, web, token)
	}
	h := pipelinetest.New(t, "webhook_receiver", body("tls.yml"), pipelinetest.WithConfigDir(dir), pipelinetest.WithWebConfigFile(filepath.Join(dir, "agent.yml")))
	h.Start()
	c := h.Component.(*webhook.Component)
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return c.Addr() != "" }, "never listened")
	tlsClient := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, DisableKeepAlives: true}}
	push := func(cl *http.Client, url, user, tok string) int {
		req, _ := http.NewRequest("POST", url+"/api/m/set", strings.NewReader("value=3"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Private-Token", tok)
		if user != "" {
			req.SetBasicAuth(user, "s3cret")
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// tls.yml, not the agent's file: TLS, no basic auth.
	if code := push(tlsClient, "https://"+fixed, "", token); code != 204 {
		t.Fatalf("push over TLS from web_config_file = %d, want 204", code)
	}
	if code := push(tlsClient, "https://"+fixed, "", "wrong"); code != 401 {
		t.Fatalf("wrong token over TLS = %d, want 401", code)
	}

	if err := h.Update(body("auth.yml")); err != nil {
		t.Fatal(err)
	}
	if c.Addr() != fixed {
		t.Fatalf("address moved: %s -> %s", fixed, c.Addr())
	}
	plain := &http.Client{Timeout: 30 * time.Second}
	if code := push(plain, "http://"+fixed, "prom", token); code != 204 {
		t.Fatalf("plain HTTP with auth.yml's user and the token = %d, want 204", code)
	}
	for _, tc := range []struct{ user, tok string }{{"", token}, {"agent", token}, {"prom", "wrong"}} {
		if code := push(plain, "http://"+fixed, tc.user, tc.tok); code != 401 {
			t.Errorf("user %q token %q = %d, want 401", tc.user, tc.tok, code)
		}
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestBadOwnWebConfigFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "typo.yml"), []byte("basic_auth_user:\n  prom: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"without listen", "web_config_file = \"typo.yml\"", "set listen too"},
		{"missing file", "listen = \"127.0.0.1:0\"\nweb_config_file = \"nope.yml\"", "nope.yml"},
		{"unknown key", "listen = \"127.0.0.1:0\"\nweb_config_file = \"typo.yml\"", "basic_auth_user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := pipelinetest.Decode(t, "webhook_receiver", tc.body+"\nauth { tokens = [\""+token+"\"] }\n", pipelinetest.WithConfigDir(dir))
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
				t.Fatalf("diagnostics %v, want one mentioning %q", diags, tc.want)
			}
		})
	}
}
