package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestRoutePrefix: with --web.route-prefix every endpoint of the agent,
// the sinks' paths and the status UI move under the prefix, as in
// Prometheus; / redirects there and the old paths are 404. The UI's links
// use the external URL's path.
func TestRoutePrefix(t *testing.T) {
	a := startAgentIn(t, filepath.Join(t.TempDir(), "sluice.hcl"), e2eConfigV1, nil,
		"--web.enable-lifecycle",
		"--web.route-prefix", "/internal/sluice",
		"--web.external-url", "https://sso.example.com/ops/sluice/")
	a.waitFor("ready under the prefix", func() bool { code, _ := a.get("/internal/sluice/-/ready"); return code == 200 })
	for path, want := range map[string]string{
		"/internal/sluice/-/healthy":              "Sluice is healthy.",
		"/internal/sluice/api/v0/components":      `"id": "relabel.self"`,
		"/internal/sluice/metrics":                "sluice_build_info{",
		"/internal/sluice/metrics/e2e":            "sluice_build_info{",
		"/internal/sluice/":                       `<a href="/ops/sluice/component/relabel.self" class="node`,
		"/internal/sluice/component/relabel.self": `<a href="/ops/sluice/">Overview</a>`,
		"/internal/sluice/static/style.css":       "focus-visible",
	} {
		code, body := a.get(path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, want 200 with %q:\n%.300s", path, code, want, body)
		}
	}
	for _, path := range []string{"/-/healthy", "/metrics", "/metrics/e2e", "/api/v0/components", "/component/relabel.self"} {
		if code, _ := a.get(path); code != 404 {
			t.Errorf("GET %s outside the prefix: %d, want 404", path, code)
		}
	}
	if code, _ := a.post("/internal/sluice/-/reload"); code != 200 {
		t.Errorf("POST reload under the prefix: %d", code)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get("http://" + a.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/internal/sluice/" {
		t.Errorf("GET /: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Issue 19 item 14: under a route prefix, a path with empty or dot
// segments never redirects out of the prefix (net/http's cleaning redirect
// dropped it: /sluice//-/healthy answered 307 to /-/healthy); it is 404,
// and clean paths still serve.
func TestRoutePrefixUncleanPaths(t *testing.T) {
	a := startAgentIn(t, filepath.Join(t.TempDir(), "sluice.hcl"), e2eConfigV1, nil,
		"--web.external-url", "http://127.0.0.1/sluice/")
	a.waitFor("ready under the prefix", func() bool { code, _ := a.get("/sluice/-/ready"); return code == 200 })
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/sluice//-/healthy", "/sluice/./-/healthy", "/sluice/x/../-/healthy", "/sluice//metrics", "/sluice//", "/sluice/-//healthy", "/sluice/../-/healthy", "//sluice/-/healthy"} {
		for _, method := range []string{"GET", "POST"} {
			req, _ := http.NewRequest(method, "http://"+a.addr+p, nil)
			req.URL.Opaque = p // sent as written, not cleaned by the client
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); loc != "" && !strings.HasPrefix(loc, "/sluice/") {
				t.Errorf("%s %s: %d redirects out of the prefix to %q", method, p, resp.StatusCode, loc)
			}
			if resp.StatusCode != 404 {
				t.Errorf("%s %s: %d, want 404", method, p, resp.StatusCode)
			}
		}
	}
	if code, body := a.get("/sluice/-/healthy"); code != 200 || !strings.Contains(body, "healthy") {
		t.Errorf("clean path: %d %s", code, body)
	}
}
