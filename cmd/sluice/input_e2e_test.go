package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testing/realpart"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// Regression tests for issue 19 (outside input), through the built binary.

// inputConfig: a webhook receiver on its own listener with a GitLab hook
// (a token) and a Standard Webhooks hook (a signature over the body).
func inputConfig(addr string) string {
	return fmt.Sprintf(`
webhook_receiver "in" {
  listen = %q
  auth { tokens = ["api-t0ken"] }
  metric "ci_job_duration_seconds" {
    type   = "histogram"
    labels = ["project", "status"]
  }
  webhook "jobs" {
    kind   = "gitlab"
    secret = "hook-t0ken"
    rule {
      when = event.object_kind == "build"
      observe {
        metric = "ci_job_duration_seconds"
        value  = event.build_duration
        labels = { project = event.project_name, status = event.build_status }
      }
    }
  }
  webhook "std" {
    kind   = "generic"
    secret = "whsec_c2VjcmV0LWtleS1ieXRlcw=="
    rule {
      observe {
        metric = "ci_job_duration_seconds"
        value  = event.d
        labels = { project = "std", status = "ok" }
      }
    }
  }
}
`, addr)
}

// startInputAgent starts the agent on inputConfig and waits until the
// receiver's own listener serves (ready may come before it).
func startInputAgent(t *testing.T, extra ...string) (*agent, string) {
	t.Helper()
	hookAddr := pipelinetest.FreeTCPAddr(t)
	a := startAgent(t, inputConfig(hookAddr), extra...)
	a.waitFor("the receiver's listener", func() bool {
		code, _ := doGet(http.DefaultClient, "http://"+hookAddr+"/metrics", "", "")
		return code == 200
	})
	return a, hookAddr
}

func postHook(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Gitlab-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Items 5 and 6: a signed delivery nested a million levels deep is refused
// (400, counted by reason) before any value is built, and the agent lives
// on; a delivery whose rules read a few fields of a large body is applied.
func TestWebhookHostileJSON(t *testing.T) {
	a, hookAddr := startInputAgent(t)
	url := "http://" + hookAddr + "/hooks/jobs"
	deep := strings.Repeat("[", 1_000_000) + strings.Repeat("]", 1_000_000)
	code, body := postHook(t, url, "hook-t0ken", deep)
	if code != 400 || !strings.Contains(body, "nested deeper than 64") {
		t.Fatalf("deep delivery: %d %q, want 400 naming the depth limit", code, body)
	}
	if code, _ := a.get("/-/healthy"); code != 200 {
		t.Fatalf("agent not healthy after a deep delivery: %d", code)
	}
	// Large, and only a few fields read: applied.
	big := `{"object_kind": "build", "build_duration": 12, "project_name": "p", "build_status": "ok", "commits": [` +
		strings.Repeat(`{"id": "abc", "n": [1, 2, {"x": null}]},`, 100_000) + `{}]}`
	if code, body := postHook(t, url, "hook-t0ken", big); code != 200 || !strings.Contains(body, "applied 1 changes") {
		t.Fatalf("large delivery: %d %q", code, body)
	}
	_, m := a.get("/metrics")
	if n := metricValue(t, m, `sluice_webhook_bodies_refused_total{component_id="webhook_receiver.in",reason="too_deep",route="hook:jobs"}`); n != 1 {
		t.Errorf("refused too_deep = %v, want 1:\n%s", n, grepLines(m, "bodies_refused"))
	}
	if code, body := doGet(http.DefaultClient, "http://"+hookAddr+"/metrics", "", ""); code != 200 || !strings.Contains(body, `ci_job_duration_seconds_count{project="p",status="ok"} 1`) {
		t.Errorf("the large delivery's observation is not served: %d\n%s", code, body)
	}
}

// heapInuse is the agent's Go heap in use, from its /metrics: the e2e
// binary is built with -race, whose shadow memory makes its RSS no
// measure of what the agent holds (bench/webhookstall measures the RSS of
// a release build).
func heapInuse(t *testing.T, a *agent) float64 {
	t.Helper()
	_, m := a.get("/metrics")
	return metricValue(t, m, "go_memstats_heap_inuse_bytes")
}

// Item 7: 30 connections that announce a 20 MB signed delivery, send
// 1.5 MB each and stall, without a valid signature: together they hold
// less than 64 MiB (the bound on unverified bytes answers 503 past it),
// and the body read timeout cuts every one off. A delivery without its
// credential headers is refused before its body is read.
func TestWebhookStalledUnverifiedBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 45 MB over loopback")
	}
	a, hookAddr := startInputAgent(t, "--web.read-body-timeout", "3s")
	base := heapInuse(t, a)

	// No credential header: 401 without reading the announced body.
	conn, err := net.Dial("tcp", hookAddr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /hooks/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20000000\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("no token, body never sent: %v %v, want 401 at once", resp, err)
	}
	conn.Close()

	const conns, sent = 30, 1_500_000
	chunk := []byte(strings.Repeat("x", 64<<10))
	type result struct {
		code   int
		closed time.Duration // from the end of sending to the server closing
	}
	results := make([]result, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", hookAddr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			fmt.Fprintf(c, "POST /hooks/std HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20000000\r\n"+
				"webhook-id: msg_%d\r\nwebhook-timestamp: %s\r\nwebhook-signature: v1,AAAA\r\n\r\n", i, ts)
			for n := 0; n < sent; n += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					break // answered 503 and closed: the rest is not wanted
				}
			}
			start := time.Now()
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			r, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				results[i].code = r.StatusCode
				_, _ = io.Copy(io.Discard, r.Body)
			}
			// The server closes after its answer.
			_, _ = io.Copy(io.Discard, c)
			results[i].closed = time.Since(start)
		}()
	}
	// The peak, sampled until every connection has ended.
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	var peak float64
	for sampling := true; sampling; {
		select {
		case <-ended:
			sampling = false
		case <-time.After(100 * time.Millisecond):
		}
		peak = max(peak, heapInuse(t, a)-base)
	}
	t.Logf("Go heap over the idle agent's with %d stalled connections: %.1f MiB", conns, peak/(1<<20))
	if peak > 64<<20 {
		t.Errorf("stalled unverified bodies hold %.1f MiB of heap, want < 64", peak/(1<<20))
	}
	codes := map[int]int{}
	for i, r := range results {
		codes[r.code]++
		if r.closed > 15*time.Second {
			t.Errorf("connection %d still open %s after it stalled", i, r.closed)
		}
	}
	t.Logf("answers: %v", codes)
	if codes[503] == 0 || codes[408]+codes[0] == 0 {
		t.Errorf("answers %v: want some 503 (bound on unverified bytes) and the rest cut by the read timeout", codes)
	}
	_, m := a.get("/metrics")
	for _, reason := range []string{"unverified_budget", "body_timeout"} {
		if n := metricValue(t, m, `sluice_webhook_bodies_refused_total{component_id="webhook_receiver.in",reason="`+reason+`",route="hook:std"}`); n < 1 {
			t.Errorf("refused %s not counted:\n%s", reason, grepLines(m, "bodies_refused"))
		}
	}
	if n := metricValue(t, m, `sluice_webhook_unverified_bytes{component_id="webhook_receiver.in"}`); n != 0 {
		t.Errorf("unverified bytes still held after every connection ended: %v", n)
	}
	// A good delivery goes through afterwards.
	if code, body := postHook(t, "http://"+hookAddr+"/hooks/jobs", "hook-t0ken", `{"object_kind": "build", "build_duration": 1, "project_name": "q", "build_status": "ok"}`); code != 200 {
		t.Errorf("delivery after the stall: %d %s", code, body)
	}
}

// Item 7, every listener: the agent's own server cuts off a request whose
// headers or body stall, after --web.read-header-timeout and
// --web.read-body-timeout.
func TestAgentServerReadTimeouts(t *testing.T) {
	realpart.SkipShortSlow(t, "waits for the agent server's 1 s read timeouts to cut stalled requests")
	a := startAgent(t, e2eConfigV1, "--web.enable-lifecycle", "--web.read-header-timeout", "1s", "--web.read-body-timeout", "1s")
	for name, req := range map[string]string{
		"stalled headers": "POST /-/reload HTTP/1.1\r\nHost: x\r\n",
		"stalled body":    "POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
	} {
		c, err := net.Dial("tcp", a.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(c, req)
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err = io.Copy(io.Discard, c) // until the server closes
		took := time.Since(start)
		c.Close()
		if err != nil {
			t.Errorf("%s: not closed by the server: %v", name, err)
		}
		if took > 10*time.Second {
			t.Errorf("%s: closed after %s, want about 1-2 s", name, took)
		}
	}
}
