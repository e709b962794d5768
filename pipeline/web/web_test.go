package web_test

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sluicehq/sluice/internal/testing/testcerts"
	"github.com/sluicehq/sluice/pipeline/web"
)

var discard = slog.New(slog.DiscardHandler)

func TestServeHTTPPlainAndShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := web.ServeHTTP(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") }), "", discard)
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + s.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hi" {
		t.Fatalf("got %q", b)
	}
	s.Shutdown(5 * time.Second)
	if s.Err() != nil {
		t.Fatalf("Err after Shutdown: %v", s.Err())
	}
	if ln2, err := net.Listen("tcp", s.Addr()); err != nil {
		t.Fatalf("address still bound after Shutdown: %v", err)
	} else {
		ln2.Close()
	}
}

// A web config that is broken when the server starts: the server stops at
// once, says why through Err, and releases the address.
func TestServeHTTPBadWebConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(path, []byte("basic_auth_users:\n  u: not-a-hash\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := web.ValidateWebConfig(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("ValidateWebConfig = %v, want an error naming the file", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := web.ServeHTTP(ln, http.NotFoundHandler(), path, discard)
	deadline := time.Now().Add(5 * time.Second)
	for s.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no error from a server with a broken web config")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(s.Err().Error(), path) {
		t.Fatalf("Err = %v, want it to name the file", s.Err())
	}
	s.Shutdown(time.Second)
	if ln2, err := net.Listen("tcp", s.Addr()); err != nil {
		t.Fatalf("address still bound: %v", err)
	} else {
		ln2.Close()
	}
}

// Shutdown right after ServeHTTP (a component stopped at once) returns and
// releases the socket whether or not serving had begun.
func TestServeHTTPImmediateShutdown(t *testing.T) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := web.ServeHTTP(ln, http.NotFoundHandler(), "", discard)
		s.Shutdown(time.Second)
		if ln2, err := net.Listen("tcp", s.Addr()); err != nil {
			t.Fatalf("address still bound: %v", err)
		} else {
			ln2.Close()
		}
	}
}

func TestWebConfigFor(t *testing.T) {
	if web.WebConfigFor("", "agent.yml") != "agent.yml" || web.WebConfigFor("own.yml", "agent.yml") != "own.yml" || web.WebConfigFor("", "") != "" {
		t.Fatal("WebConfigFor: the component's file wins, else the agent's")
	}
}

// The web config example in docs/operations.md is valid (with real
// certificate files in place of the example's paths), and its hash is
// that of the password the comment gives.
func TestOperationsDocWebConfigExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n# web.yml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no ```yaml block starting with # web.yml in docs/operations.md")
	}
	yml := string(m[1])
	dir := t.TempDir()
	ca := testcerts.NewCA(t)
	ca.WriteServer(t, 1, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	yml = strings.ReplaceAll(yml, "/etc/sluice/tls/", "")
	path := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := web.ValidateWebConfig(path); err != nil {
		t.Fatalf("the documented example is invalid: %v\n%s", err, yml)
	}
	hash := regexp.MustCompile(`prometheus: (\S+)`).FindStringSubmatch(yml)
	if hash == nil || bcrypt.CompareHashAndPassword([]byte(hash[1]), []byte("changeme")) != nil {
		t.Fatalf("the documented hash is not that of \"changeme\": %v", hash)
	}
}
