package runtime_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runtime"
)

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func newServer(t *testing.T, f *fixture, lifecycle bool, mounts *runtime.Mounts) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(runtime.NewHandler(runtime.ServerOptions{
		Controller:      f.ctrl,
		Mounts:          mounts,
		EnableLifecycle: lifecycle,
		Reload:          func() error { return f.ctrl.LoadFile(f.path, true) },
		Logger:          f.ctrl2Logger(),
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestServerEndpoints(t *testing.T) {
	f := newFixture(t, runtime.ControllerOptions{})
	srv := newServer(t, f, true, runtime.NewMounts())

	if code, _ := get(t, "GET", srv.URL+"/-/healthy"); code != 200 {
		t.Errorf("/-/healthy = %d", code)
	}
	if code, _ := get(t, "GET", srv.URL+"/-/ready"); code != 503 {
		t.Errorf("/-/ready before any config = %d, want 503", code)
	}
	if err := f.apply(`
test_source "a" {}
test_sink "s" { inputs = [test_source.a.metrics] }
`); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, "GET", srv.URL+"/-/ready"); code != 200 {
		t.Errorf("/-/ready after config = %d, want 200", code)
	}

	code, body := get(t, "GET", srv.URL+"/api/v0/components")
	if code != 200 {
		t.Fatalf("/api/v0/components = %d", code)
	}
	var comps []runtime.ComponentInfo
	if err := json.Unmarshal([]byte(body), &comps); err != nil {
		t.Fatalf("components JSON: %v\n%s", err, body)
	}
	if len(comps) != 2 || comps[0].ID != "test_source.a" || comps[1].ID != "test_sink.s" ||
		len(comps[1].Upstreams) != 1 || comps[1].Upstreams[0] != "test_source.a" || comps[1].Type != "test_sink" {
		t.Errorf("components = %+v", comps)
	}
	if comps[0].Health.Since.IsZero() || comps[0].Health.State == "" {
		t.Errorf("component health lacks state or transition time: %+v", comps[0].Health)
	}

	code, body = get(t, "GET", srv.URL+"/metrics")
	if code != 200 || !strings.Contains(body, "sluice_config_last_reload_successful 1") ||
		!strings.Contains(body, `sluice_component_health{component_id="test_sink.s",state="healthy"}`) {
		t.Errorf("/metrics = %d:\n%s", code, body)
	}

	// Reload: GET is refused, POST applies, a bad file answers 400 with
	// the diagnostics and leaves the pipeline alone.
	if code, _ := get(t, "GET", srv.URL+"/-/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload = %d, want 405", code)
	}
	writeFile(t, f.path, `test_source "b" {}`)
	if code, body := get(t, "POST", srv.URL+"/-/reload"); code != 200 {
		t.Errorf("POST /-/reload = %d: %s", code, body)
	}
	waitForIDs(t, f.ctrl, "test_source.b")
	writeFile(t, f.path, "test_source \"c\" {\n  vaule = 1\n}\n")
	code, body = get(t, "POST", srv.URL+"/-/reload")
	if code != 400 || !strings.Contains(body, "sluice.hcl:2:3: error: Unsupported argument") {
		t.Errorf("POST /-/reload with a bad config = %d:\n%s", code, body)
	}
	waitForIDs(t, f.ctrl, "test_source.b")

	if code, _ := get(t, "GET", srv.URL+"/nope"); code != 404 {
		t.Errorf("unknown path = %d, want 404", code)
	}
}

func TestServerReloadNeedsLifecycleFlag(t *testing.T) {
	f := newFixture(t, runtime.ControllerOptions{})
	srv := newServer(t, f, false, runtime.NewMounts())
	code, body := get(t, "POST", srv.URL+"/-/reload")
	if code != http.StatusForbidden || !strings.Contains(body, "--web.enable-lifecycle") {
		t.Errorf("POST /-/reload without the flag = %d %q, want 403 naming the flag", code, body)
	}
}

func TestMounts(t *testing.T) {
	f := newFixture(t, runtime.ControllerOptions{})
	m := runtime.NewMounts()
	srv := newServer(t, f, false, m)
	for _, p := range []string{"/metrics", "/-/ready", "/-/reload", "/api/v0/components", "/api/other", "noslash"} {
		if _, err := m.Mount(p, http.NotFoundHandler()); err == nil {
			t.Errorf("Mount(%q) succeeded; built-in and relative paths must be refused", p)
		}
	}
	unmount, err := m.Mount("/metrics/app", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Mount("/metrics/app", http.NotFoundHandler()); err == nil || !strings.Contains(err.Error(), "already mounted") {
		t.Errorf("second Mount of the same path: %v", err)
	}
	if code, body := get(t, "GET", srv.URL+"/metrics/app"); code != 200 || body != "app" {
		t.Errorf("mounted path = %d %q", code, body)
	}
	unmount()
	unmount() // idempotent
	if code, _ := get(t, "GET", srv.URL+"/metrics/app"); code != 404 {
		t.Errorf("unmounted path = %d, want 404", code)
	}
	if _, err := m.Mount("/metrics/app", http.NotFoundHandler()); err != nil {
		t.Errorf("Mount after unmount: %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Every built-in endpoint answers 405 with an Allow header to a method it
// does not serve; HEAD works wherever GET does.
func TestServerMethodNotAllowed(t *testing.T) {
	f := newFixture(t, runtime.ControllerOptions{})
	if err := f.apply(`test_source "a" {}`); err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, f, true, runtime.NewMounts())
	for _, path := range []string{"/-/healthy", "/-/ready", "/api/v0/components", "/metrics"} {
		for _, m := range []string{"POST", "PUT", "DELETE", "TRACE", "PATCH"} {
			req, _ := http.NewRequest(m, srv.URL+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s = %d, Allow %q; want 405, Allow \"GET, HEAD\"", m, path, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
		if resp, err := http.Head(srv.URL + path); err != nil || resp.StatusCode != 200 {
			t.Errorf("HEAD %s = %v %v, want 200", path, resp.StatusCode, err)
		}
	}
	for _, m := range []string{"GET", "HEAD", "DELETE"} {
		req, _ := http.NewRequest(m, srv.URL+"/-/reload", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if allow := resp.Header.Get("Allow"); resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(allow, "POST") || !strings.Contains(allow, "PUT") {
			t.Errorf("%s /-/reload = %d, Allow %q; want 405 allowing POST and PUT", m, resp.StatusCode, allow)
		}
	}
}

// /-/ready is 503 while a component cannot start (its Run fails at once,
// like a socket that cannot be bound) and 200 once it stays up; a single
// crash of a component that was running fine does not make it unready.
func TestReadyReflectsFailingComponents(t *testing.T) {
	f := newFixture(t, runtime.ControllerOptions{})
	srv := newServer(t, f, false, runtime.NewMounts())
	if err := f.apply("test_source \"ok\" {}\ntest_source \"bad\" {\n  fail_times = 1000000\n}\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/-/ready to report the failing component", func() bool {
		code, body := get(t, "GET", srv.URL+"/-/ready")
		return code == 503 && strings.Contains(body, "test_source.bad") && strings.Contains(body, "injected failure")
	})

	// Fails twice, then stays up: ready once it has run stably.
	if err := f.apply("test_source \"ok\" {}\ntest_source \"flaky\" {\n  fail_times = 2\n}\n"); err != nil {
		t.Fatal(err)
	}
	// Ready, after both failures and a stable run: /-/ready alone could be
	// 200 before the first failure, and the crash below would then hit a
	// component that never ran stably.
	waitFor(t, "ready after the component stayed up", func() bool {
		stable := false
		for _, c := range f.ctrl.Components() {
			if c.ID == "test_source.flaky" && c.Restarts == 2 && c.Health.State == pipeline.HealthHealthy {
				stable = true
			}
		}
		code, _ := get(t, "GET", srv.URL+"/-/ready")
		return stable && code == 200
	})

	// A crash of the now stable component: restarted, and still ready.
	if err := f.apply("test_source \"ok\" {}\ntest_source \"flaky\" {\n  fail_times = 2\n  crash = true\n}\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the crash", func() bool {
		for _, c := range f.ctrl.Components() {
			if c.ID == "test_source.flaky" && c.Restarts == 3 && c.Health.State == pipeline.HealthUnhealthy {
				return true
			}
		}
		return false
	})
	if code, body := get(t, "GET", srv.URL+"/-/ready"); code != 200 {
		t.Errorf("/-/ready after one crash of a stable component = %d %q, want 200", code, body)
	}
}
