package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/internal/testing/realpart"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// Issue 19: the webhook receiver's state on a real full, then freed, and a
// real read-only filesystem, through the built binary.

// smallFS mounts a tmpfs of sizeKiB on a new directory for the test and
// unmounts it at the end. It skips when mounting is not permitted (not
// root, no CAP_SYS_ADMIN, not Linux): under CI=true as well, since the
// test can only run where mounts are allowed; where they are, it runs.
func smallFS(t *testing.T, sizeKiB int) string {
	realpart.SkipShortSlow(t, "mounts a tmpfs and fills it up")
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%dk,mode=0700", sizeKiB)); err != nil {
		t.Skipf("cannot mount a %d KiB tmpfs for the full-disk test (%v): it needs root or CAP_SYS_ADMIN on Linux", sizeKiB, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file until the filesystem is full and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for i := 0; ; i++ {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return path
		}
		if i > 1<<16 {
			t.Fatalf("%s never filled up", dir)
		}
	}
}

func remount(t *testing.T, dir string, ro bool) {
	t.Helper()
	flags := uintptr(syscall.MS_REMOUNT)
	if ro {
		flags |= syscall.MS_RDONLY
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, ""); err != nil {
		t.Fatalf("remounting %s (read-only %v): %v", dir, ro, err)
	}
}

const durableConfig = `
webhook_receiver "k" {
  listen = %q
  auth { tokens = ["k9"] }
  metric "pushed_total" {
    type   = "counter"
    labels = ["phase"]
  }
}
`

// pusher pushes inc of pushed_total{phase} to a receiver.
type pusher struct {
	t    *testing.T
	base string
}

func (p pusher) push(phase string) int {
	p.t.Helper()
	return p.post("/api/pushed_total/inc", "labels="+phase)
}

// post sends an authenticated form to the receiver and returns the status.
func (p pusher) post(path, form string) int {
	p.t.Helper()
	req, _ := http.NewRequest("POST", p.base+path, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer k9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("push: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// value is pushed_total{phase} in the receiver's scrape (-1: absent, -2:
// no scrape).
func (p pusher) value(phase string) float64 {
	p.t.Helper()
	resp, err := http.Get(p.base + "/metrics")
	if err != nil {
		return -2
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	series := fmt.Sprintf(`pushed_total{phase=%q}`, phase)
	if resp.StatusCode != 200 {
		return -2
	}
	if !strings.Contains(string(b), series+" ") {
		return -1
	}
	return metricValue(p.t, string(b), series)
}

// health is the receiver's state in the agent's components API.
func (a *agent) health(id string) string {
	a.t.Helper()
	_, body := a.get("/api/v0/components")
	var comps []struct {
		ID     string `json:"id"`
		Health struct {
			State   string `json:"state"`
			Message string `json:"message"`
		} `json:"health"`
	}
	if err := json.Unmarshal([]byte(body), &comps); err != nil {
		a.t.Fatalf("components API: %v: %s", err, body)
	}
	for _, c := range comps {
		if c.ID == id {
			return c.Health.State + ": " + c.Health.Message
		}
	}
	return "absent"
}

// kill9 kills the agent with SIGKILL (nothing runs at exit) and waits for
// it to exit.
func (a *agent) kill9() {
	a.t.Helper()
	if err := a.cmd.Process.Kill(); err != nil {
		a.t.Fatal(err)
	}
	a.exited <- <-a.exited // for the cleanup
}

func (a *agent) selfMetric(series string) float64 {
	a.t.Helper()
	_, body := a.get("/metrics")
	return metricValue(a.t, body, series)
}

// A disk that fills up under pushes: refused (never 204 for what is not
// on disk), reported, accepted again once space is freed, without a
// restart; after kill -9 every acknowledged push is there — including
// those acknowledged right after the failed write that left a torn line.
func TestWebhookFullDiskKeepsAcknowledgedPushes(t *testing.T) {
	storage := smallFS(t, 2048)
	dir := t.TempDir()
	port := pipelinetest.FreeTCPAddr(t)
	config := fmt.Sprintf(durableConfig, port)
	a := startAgentData(t, dir, storage, config)
	p := pusher{t: t, base: "http://" + port}
	a.waitFor("the receiver", func() bool { return p.value("none") == -1 })

	acked := map[string]int{}
	for range 10 {
		if code := p.push("before"); code != 204 {
			t.Fatalf("push before the disk filled = %d", code)
		}
		acked["before"]++
	}
	filler := fill(t, storage)
	// The log's last page may still take a few lines; then refusals.
	refusedWith := map[int]int{}
	for i := 0; len(refusedWith) == 0 || refusedWith[503] < 5; i++ {
		if i > 2000 {
			t.Fatalf("pushes on a full disk not refused with 503 (%d acknowledged, refusals by code %v)", acked["full"], refusedWith)
		}
		switch code := p.push("full"); code {
		case 204:
			if len(refusedWith) > 0 {
				t.Fatalf("push acknowledged on a full disk after refusals %v", refusedWith)
			}
			acked["full"]++
		case 500, 503:
			refusedWith[code]++
		default:
			t.Fatalf("push on a full disk = %d", code)
		}
	}
	if h := a.health("webhook_receiver.k"); !strings.HasPrefix(h, "unhealthy: ") || !strings.Contains(h, "no space left on device") {
		t.Errorf("health on a full disk = %q", h)
	}
	if v := a.selfMetric(`sluice_webhook_persist_failing{component_id="webhook_receiver.k"}`); v != 1 {
		t.Errorf("persist_failing on a full disk = %v", v)
	}
	if v := a.selfMetric(`sluice_webhook_persist_errors_total{component_id="webhook_receiver.k",what="log"}`); v < 1 {
		t.Errorf("persist errors not counted: %v", v)
	}
	if code, _ := a.get("/-/ready"); code != 200 {
		// An unhealthy component does not make the agent unready (see
		// pipeline.Controller.Readiness): it still serves what it has.
		t.Errorf("/-/ready = %d", code)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	a.waitFor("pushes accepted again without a restart", func() bool { return p.push("probe") == 204 })
	for range 20 {
		if code := p.push("after"); code != 204 {
			t.Fatalf("push after space came back = %d", code)
		}
		acked["after"]++
	}
	if h := a.health("webhook_receiver.k"); !strings.HasPrefix(h, "healthy") {
		t.Errorf("health after recovery = %q", h)
	}

	a.kill9()
	a = startAgentData(t, dir, storage, config)
	a.waitFor("the restarted receiver", func() bool { return p.value("before") >= 0 })
	if got := p.value("before"); got != float64(acked["before"]) {
		t.Errorf("before: %v restored, %d acknowledged", got, acked["before"])
	}
	if got := p.value("after"); got != float64(acked["after"]) {
		t.Errorf("after: %v restored, %d acknowledged (the batches after the failed write)", got, acked["after"])
	}
	// A push answered 500 was applied in memory and written once space
	// came back (its outcome was unknown to the client); 503s never were.
	if got := p.value("full"); got < float64(acked["full"]) || got > float64(acked["full"]+refusedWith[500]) {
		t.Errorf("full: %v restored, %d acknowledged, %d answered 500", got, acked["full"], refusedWith[500])
	}
}

// A receiver started on a full disk, and one started on a read-only data
// directory: ready, reports the fault, refuses changes, and accepts them
// again once the disk is writable, without a restart.
func TestWebhookStartsOnFullOrReadOnlyDisk(t *testing.T) {
	for _, mode := range []string{"full", "read-only"} {
		t.Run(mode, func(t *testing.T) {
			storage := smallFS(t, 1024)
			dir := t.TempDir()
			port := pipelinetest.FreeTCPAddr(t)
			config := fmt.Sprintf(durableConfig, port)
			p := pusher{t: t, base: "http://" + port}
			// Some state first, stopped cleanly.
			a := startAgentData(t, dir, storage, config)
			a.waitFor("the receiver", func() bool { return p.value("none") == -1 })
			for range 3 {
				if code := p.push("before"); code != 204 {
					t.Fatalf("push = %d", code)
				}
			}
			_ = a.cmd.Process.Signal(os.Interrupt)
			<-a.exited
			a.exited <- nil

			var filler string
			want := "no space left on device"
			if mode == "full" {
				filler = fill(t, storage)
			} else {
				remount(t, storage, true)
				want = "read-only file system"
			}
			a = startAgentData(t, dir, storage, config) // ready: it serves what it has
			a.waitFor("the restored state", func() bool { return p.value("before") == 3 })
			refused := 0
			for range 5 {
				switch code := p.push("during"); code {
				case 500, 503:
					refused++
				default:
					t.Fatalf("push on a %s disk = %d", mode, code)
				}
			}
			a.waitFor("unhealthy naming the cause", func() bool {
				h := a.health("webhook_receiver.k")
				return strings.HasPrefix(h, "unhealthy: ") && strings.Contains(h, want)
			})
			if v := a.selfMetric(`sluice_webhook_persist_failing{component_id="webhook_receiver.k"}`); v != 1 {
				t.Errorf("persist_failing = %v", v)
			}
			if code, _ := a.get("/-/ready"); code != 200 {
				t.Errorf("/-/ready = %d (an unhealthy component keeps the agent ready)", code)
			}
			if mode == "full" {
				if err := os.Remove(filler); err != nil {
					t.Fatal(err)
				}
			} else {
				remount(t, storage, false)
			}
			a.waitFor("pushes accepted again without a restart", func() bool { return p.push("after") == 204 })
			a.waitFor("healthy again", func() bool { return strings.HasPrefix(a.health("webhook_receiver.k"), "healthy") })
			if v := a.selfMetric(`sluice_webhook_persist_failing{component_id="webhook_receiver.k"}`); v != 0 {
				t.Errorf("persist_failing after recovery = %v", v)
			}
			a.kill9()
			a = startAgentData(t, dir, storage, config)
			a.waitFor("the restarted receiver", func() bool { return p.value("before") >= 0 })
			if got := p.value("before"); got != 3 {
				t.Errorf("before = %v after restart, want 3", got)
			}
			if got := p.value("after"); got != 1 {
				t.Errorf("after = %v after restart, want 1", got)
			}
		})
	}
}

// A cache with persist on a real full tmpfs: the write fails (previous file
// kept), the cache says so (unhealthy, persist_failing) and keeps serving;
// once space is freed the next refresh writes the file, and a restart after
// kill -9 serves the values written after the fault.
func TestCacheFullDiskRecovers(t *testing.T) {
	storage := smallFS(t, 1024)
	dir := t.TempDir()
	udp := freeUDPAddr(t)
	config := statsdCacheConfig(udp, "200ms")
	addr := pipelinetest.FreeTCPAddr(t)
	a := startAgentWithStorage(t, dir, addr, storage, config)
	conn, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	send := func(v int) {
		if _, err := fmt.Fprintf(conn, "e2e_full_gauge:%d|g\n", v); err != nil {
			t.Fatal(err)
		}
		a.scrapeHas("/metrics/default", []string{fmt.Sprintf("e2e_full_gauge %d\n", v)}, nil)
	}
	send(1)
	a.waitFor("the snapshot persisted", func() bool {
		return a.selfMetric(`sluice_cache_persisted_series{component_id="cache.app"}`) == 1
	})
	filler := fill(t, storage)
	send(2)
	a.waitFor("the full disk reported", func() bool {
		h := a.health("cache.app")
		return strings.HasPrefix(h, "unhealthy: ") && strings.Contains(h, "no space left on device") &&
			a.selfMetric(`sluice_cache_persist_failing{component_id="cache.app"}`) == 1
	})
	if v := a.selfMetric(`sluice_cache_persist_errors_total{component_id="cache.app",op="write"}`); v < 1 {
		t.Errorf("write errors = %v", v)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	send(3)
	a.waitFor("recovered: healthy, file written", func() bool {
		return strings.HasPrefix(a.health("cache.app"), "healthy") &&
			a.selfMetric(`sluice_cache_persist_failing{component_id="cache.app"}`) == 0
	})
	a.kill9()
	b := startAgentWithStorage(t, dir, addr, storage, config)
	var body string
	b.waitFor("the first scrape", func() bool {
		var code int
		code, body = b.get("/metrics/default")
		return code == 200
	})
	if !strings.Contains(body, "e2e_full_gauge 3\n") {
		t.Errorf("after kill -9 the first scrape lacks the value written after the fault:\n%s", body)
	}
}

// Item 18: a webhook snapshot of another format version is not loaded:
// the agent says why it is not ready, and the file is left as it is.
func TestWebhookSnapshotVersionChecked(t *testing.T) {
	storage := filepath.Join(t.TempDir(), "data")
	state := filepath.Join(storage, "webhook_receiver.k")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	const content = `{"version":99,"gen":1,"metrics":[{"name":"pushed_total","type":"counter","labels":["phase"],"series":[{"l":["x"],"v":5,"t":1}]}]}`
	snap := filepath.Join(state, "snapshot.json")
	if err := os.WriteFile(snap, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	a := launch(t, fmt.Sprintf(durableConfig, pipelinetest.FreeTCPAddr(t)), launchOpts{storage: storage})
	a.waitFor("not ready, naming the version", func() bool {
		code, body := a.get("/-/ready")
		return code == 503 && strings.Contains(body, "format version 99, this agent reads version 1")
	})
	if b, _ := os.ReadFile(snap); string(b) != content {
		t.Errorf("the snapshot was changed: %s", b)
	}
}

// Item 1: a push whose result overflows to +Inf is refused (400, counted);
// the state stays encodable, so a clean stop and a start keep it and the
// agent is ready.
func TestWebhookOverflowRefused(t *testing.T) {
	dir, storage := t.TempDir(), filepath.Join(t.TempDir(), "data")
	port := pipelinetest.FreeTCPAddr(t)
	config := fmt.Sprintf(durableConfig, port)
	a := startAgentData(t, dir, storage, config)
	p := pusher{t: t, base: "http://" + port}
	a.waitFor("the receiver", func() bool { return p.value("none") == -1 })
	if code := p.post("/api/pushed_total/add", "labels=big&value=1.7e308"); code != 204 {
		t.Fatalf("first add = %d", code)
	}
	if code := p.post("/api/pushed_total/add", "labels=big&value=1.7e308"); code != 400 {
		t.Errorf("overflowing add = %d, want 400", code)
	}
	if v := a.selfMetric(`sluice_webhook_nonfinite_refused_total{component_id="webhook_receiver.k",metric="pushed_total"}`); v != 1 {
		t.Errorf("nonfinite_refused_total = %v", v)
	}
	_ = a.cmd.Process.Signal(os.Interrupt)
	a.exited <- <-a.exited
	a = startAgentData(t, dir, storage, config)
	a.waitFor("the restored state", func() bool { return p.value("big") == 1.7e308 })
}
