package statsd

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testing/realpart"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// A tiny WSGI app: 200 on every path but /missing.
const wsgiApp = `
def app(environ, start_response):
    if environ["PATH_INFO"] == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"missing"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
`

// TestRealGunicorn runs a real gunicorn (Debian's package; `make test`
// installs it) with --statsd-host pointing at the receiver, serves HTTP
// requests through it and checks what the example mapping makes of
// gunicorn's own statsd lines, DogStatsD tags included.
func TestRealGunicorn(t *testing.T) {
	realpart.SkipShort(t, "a real gunicorn")
	bin, err := exec.LookPath("gunicorn")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("gunicorn is not installed (scripts/ensure-deps.sh installs it)")
		}
		t.Skip("gunicorn is not installed; run scripts/ensure-deps.sh")
	}
	h, r := startReceiver(t, `
listen_udp   = "127.0.0.1:0"
mapping_file = "gunicorn-mapping.yml"
`, pipelinetest.WithConfigDir(examplesDir))
	g := h.Gatherer()

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(wsgiApp), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr := pipelinetest.FreeTCPAddr(t)
	cmd := exec.Command(bin, "--bind", httpAddr, "--workers", "2", "--chdir", dir,
		"--statsd-host", r.addr(t, "udp"), "--dogstatsd-tags", "env:test,team:web", "app:app")
	out := &pipelinetest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("gunicorn output:\n%s", out.String())
		}
	})

	client := &http.Client{Timeout: 2 * time.Second}
	get := func(path string) (int, error) {
		resp, err := client.Get("http://" + httpAddr + path)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	// Wait until gunicorn serves; every answered request counts below.
	served := map[int]int{}
	pipelinetest.Eventually(t, 30*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("gunicorn exited:\n%s", out.String())
		default:
		}
		code, err := get("/")
		if err == nil {
			served[code]++
		}
		return err == nil
	}, "gunicorn did not start serving")
	for i := range 12 {
		path := "/"
		if i%3 == 0 {
			path = "/missing"
		}
		code, err := get(path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		served[code]++
	}
	total := served[200] + served[404]
	if served[404] != 4 || total < 13 {
		t.Fatalf("served %v", served)
	}

	tags := map[string]string{"env": "test", "team": "web"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"env": "test", "team": "web"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	waitValue(t, g, "gunicorn_requests_total", tags, float64(total))
	waitValue(t, g, "gunicorn_responses_total", with("status", "200"), float64(served[200]))
	waitValue(t, g, "gunicorn_responses_total", with("status", "404"), float64(served[404]))
	// request.duration arrives in milliseconds and is observed in seconds.
	waitValue(t, g, "gunicorn_request_duration_seconds", tags, float64(total))
	if m := find(t, g, "gunicorn_request_duration_seconds", tags); m.GetHistogram().GetSampleSum() > float64(total)*5 {
		t.Errorf("duration sum %vs for %d fast requests: not scaled from ms to s?", m.GetHistogram().GetSampleSum(), total)
	}
	// The arbiter reports its workers as a gauge.
	waitValue(t, g, "gunicorn_workers", tags, 2)
	if t.Failed() {
		t.Logf("families: %v", familyNames(t, g))
	}
}
