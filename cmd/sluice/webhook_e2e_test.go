package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/internal/testing/realpart"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// Issue 10: webhook_receiver through the built binary.

// startAgentData starts sluice on config with the given storage directory
// (kept across restarts) and environment, and waits until it is ready.
func startAgentData(t *testing.T, dir, dataDir, config string, env ...string) *agent {
	t.Helper()
	return launch(t, config, launchOpts{config: filepath.Join(dir, "sluice.hcl"), storage: dataDir, env: env}).waitReady()
}

// exampleWithPort is config/examples/delivery-metrics.hcl listening on addr.
func exampleWithPort(t *testing.T, addr string) string {
	b, err := os.ReadFile("../../config/examples/delivery-metrics.hcl")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `listen = ":2112"`, fmt.Sprintf("listen = %q", addr), 1)
	if s == string(b) {
		t.Fatal(`the example no longer has listen = ":2112"`)
	}
	return s
}

func curl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"-sS", "-w", "%{http_code}"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// The example's curl commands, exactly as documented (but for the port),
// and its GitLab job webhook, through the real binary; then the state
// survives a clean restart.
func TestWebhookExampleWithCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed")
		}
		t.Skip("curl is not installed")
	}
	dir, data := t.TempDir(), t.TempDir()
	port := pipelinetest.FreeTCPAddr(t)
	env := []string{"T=push-t0ken", "PUSH_TOKEN=push-t0ken", "GITLAB_WEBHOOK_TOKEN=gl-t0ken"}
	a := startAgentData(t, dir, data, exampleWithPort(t, port), env...)
	base := "http://" + port
	a.waitFor("the receiver", func() bool {
		resp, err := http.Get(base + "/metrics")
		ok := err == nil && resp.StatusCode == 200
		if err == nil {
			resp.Body.Close()
		}
		return ok
	})

	// As in the issue: curl -X POST -H "X-Private-Token: $T" -F value=18000 -F "labels=coordinator_pipeline,success" .../observe
	if out := curl(t, "-X", "POST", "-H", "X-Private-Token: push-t0ken", "-F", "value=18000", "-F", "labels=coordinator_pipeline,success", base+"/api/deployment_duration_seconds/observe"); out != "204" {
		t.Fatalf("curl observe: %s", out)
	}
	if out := curl(t, "-X", "POST", "-H", "X-Private-Token: wrong", "-F", "value=1", "-F", "labels=a,b", base+"/api/deployment_duration_seconds/observe"); !strings.HasSuffix(out, "401") {
		t.Errorf("wrong token: %s", out)
	}
	fixture, err := os.ReadFile("../../components/webhook/testdata/gitlab_job_event.json")
	if err != nil {
		t.Fatal(err)
	}
	if out := curl(t, "-X", "POST", "-H", "X-Gitlab-Token: gl-t0ken", "-H", "X-Gitlab-Event: Job Hook", "-H", "Content-Type: application/json", "--data-binary", string(fixture), base+"/hooks/gitlab_jobs"); !strings.HasSuffix(out, "200") {
		t.Fatalf("webhook: %s", out)
	}
	want := []string{
		`deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="14400"} 0`,
		`deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="28800"} 1`,
		`deployment_duration_seconds_sum{pipeline="coordinator_pipeline",status="success"} 18000`,
		`ci_job_duration_seconds_count{project="gitlab-org/gitlab-test",stage="test",status="success"} 1`,
		`ci_job_duration_seconds_sum{project="gitlab-org/gitlab-test",stage="test",status="success"} 94.311`,
		`ci_job_retries_total{project="gitlab-org/gitlab-test",stage="test"} 2`,
	}
	scrape := func() string { return curl(t, base+"/metrics") }
	s := scrape()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("scrape lacks %s:\n%s", w, s)
		}
	}

	// A clean restart keeps everything.
	_ = a.cmd.Process.Signal(os.Interrupt)
	<-a.exited
	a.exited <- nil // for the cleanup
	a = startAgentData(t, dir, data, exampleWithPort(t, port), env...)
	s = ""
	a.waitFor("restored state", func() bool { s = curlOrEmpty(base + "/metrics"); return strings.Contains(s, want[0]) })
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("after restart, scrape lacks %s", w)
		}
	}

	// The reset, as documented: curl -X DELETE.
	if out := curl(t, "-X", "DELETE", "-H", "X-Private-Token: push-t0ken", base+"/api/deployment_duration_seconds"); out != "204" {
		t.Fatalf("curl DELETE: %s", out)
	}
	if s := scrape(); strings.Contains(s, "deployment_duration_seconds_count") || !strings.Contains(s, want[5]) {
		t.Errorf("after DELETE:\n%s", s)
	}
}

func curlOrEmpty(url string) string {
	out, err := exec.Command("curl", "-sS", "--fail", url).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// Every push answered 2xx survives kill -9 sent right after the last reply.
func TestWebhookKill9KeepsAcknowledgedPushes(t *testing.T) {
	realpart.SkipShortSlow(t, "kills the agent with SIGKILL and restarts it on the persisted state")
	dir, data := t.TempDir(), t.TempDir()
	port := pipelinetest.FreeTCPAddr(t)
	config := fmt.Sprintf(`
webhook_receiver "k" {
  listen = %q
  auth { tokens = ["k9"] }
  metric "pushed_total" {
    type   = "counter"
    labels = ["worker"]
  }
  metric "obs" {
    type    = "histogram"
    buckets = linear(1, 1, 5)
  }
}
`, port)
	a := startAgentData(t, dir, data, config)
	base := "http://" + port
	a.waitFor("the receiver", func() bool {
		resp, err := http.Get(base + "/metrics")
		ok := err == nil && resp.StatusCode == 200
		if err == nil {
			resp.Body.Close()
		}
		return ok
	})

	const workers, each = 16, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]int{}
	obsAcked := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				path, body := "/api/pushed_total/inc", fmt.Sprintf("labels=w%d", w)
				if i%2 == 1 {
					path, body = "/api/obs/observe", "value=2"
				}
				req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", "Bearer k9")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("push: %v", err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 204 {
					t.Errorf("push = %d", resp.StatusCode)
					return
				}
				mu.Lock()
				if i%2 == 1 {
					obsAcked++
				} else {
					acked[fmt.Sprintf("w%d", w)]++
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	// kill -9 immediately after the last reply: no shutdown, no final snapshot.
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	a.exited <- nil
	if t.Failed() {
		return
	}
	a = startAgentData(t, dir, data, config)
	var s string
	a.waitFor("the restarted receiver", func() bool { s = curlOrEmptyGo(base + "/metrics"); return s != "" })
	total := 0
	for w, n := range acked {
		total += n
		line := fmt.Sprintf(`pushed_total{worker=%q} %d`, w, n)
		if !strings.Contains(s, line+"\n") {
			t.Errorf("after kill -9, scrape lacks %s", line)
		}
	}
	if line := fmt.Sprintf("obs_count %d\n", obsAcked); !strings.Contains(s, line) {
		t.Errorf("after kill -9, scrape lacks %s", line)
	}
	if total+obsAcked != workers*each {
		t.Errorf("acknowledged %d of %d pushes", total+obsAcked, workers*each)
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", s)
	}
}

func curlOrEmptyGo(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return ""
	}
	return string(b)
}

// Without listen, the receiver is a subtree on the agent's own server.
func TestWebhookMountedOnAgentServer(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	a := startAgentData(t, dir, data, `
webhook_receiver "delivery" {
  auth { tokens = ["m0unted"] }
  metric "deploys_total" {
    type   = "counter"
    labels = ["env"]
  }
}
`)
	base := "http://" + a.addr + "/push/delivery"
	a.waitFor("the mount", func() bool {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	req, _ := http.NewRequest("POST", base+"/api/deploys_total/inc", strings.NewReader(`{"labels": {"env": "prod"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer m0unted")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("push = %d", resp.StatusCode)
	}
	if s := curlOrEmptyGo(base + "/metrics"); !strings.Contains(s, `deploys_total{env="prod"} 1`) {
		t.Errorf("mounted scrape:\n%s", s)
	}
	if code, _ := a.get("/push/delivery-other/metrics"); code != 404 {
		t.Errorf("a sibling path = %d, want 404", code)
	}
	// The agent's self-metrics carry the receiver's counters.
	if _, s := a.get("/metrics"); !strings.Contains(s, `sluice_webhook_requests_total{code="204",component_id="webhook_receiver.delivery",route="api"} 1`) {
		t.Errorf("self-metrics lack the request:\n%s", grepLines(s, "sluice_webhook"))
	}
}
