package webhook_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/components/webhook"
	"github.com/sluicehq/sluice/internal/testcerts"
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
