package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// TestWebhookInitialLabelValues runs config/examples/delivery-metrics.hcl
// in the binary: deployments_total has every environment x status series
// at 0 before any push; a push, a restart (the state is persisted), a
// reload that changes the set, and DELETE (back to the set at 0).
func TestWebhookInitialLabelValues(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	port := pipelinetest.FreeTCPAddr(t)
	env := []string{"PUSH_TOKEN=push-t0ken", "GITLAB_WEBHOOK_TOKEN=gl-t0ken"}
	cfg := exampleWithPort(t, port)
	a := startAgentData(t, dir, data, cfg, env...)
	base := "http://" + port
	scrape := func() string { return curlOrEmpty(base + "/metrics") }
	push := func(verb, labels string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/api/deployments_total/"+verb, strings.NewReader("labels="+labels))
		if verb == "" {
			req, _ = http.NewRequest(http.MethodDelete, base+"/api/deployments_total", nil)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Private-Token", "push-t0ken")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 204 {
			t.Fatalf("%s %s: %d", verb, labels, resp.StatusCode)
		}
	}
	var zero []string
	for _, e := range []string{"staging", "production"} {
		for _, s := range []string{"success", "failed", "canceled"} {
			zero = append(zero, fmt.Sprintf(`deployments_total{environment=%q,status=%q} 0`, e, s))
		}
	}
	has := func(s string, want ...string) bool {
		for _, w := range want {
			if !strings.Contains(s, w+"\n") {
				return false
			}
		}
		return true
	}
	a.waitFor("the six series at 0 before any push", func() bool { return has(scrape(), zero...) })

	push("inc", "production,failed")
	failed := `deployments_total{environment="production",status="failed"} 1`
	a.waitFor("the push", func() bool { return has(scrape(), failed) })

	// Restart: the pushed value and the zeros are back.
	_ = a.cmd.Process.Signal(os.Interrupt)
	<-a.exited
	a.exited <- nil
	a = startAgentData(t, dir, data, cfg, env...)
	a.waitFor("state after restart", func() bool {
		return has(scrape(), failed, `deployments_total{environment="staging",status="canceled"} 0`)
	})

	// A reload that adds an environment: its series appear at 0.
	a.write(strings.Replace(cfg, `environment = ["staging", "production"]`, `environment = ["staging", "production", "qa"]`, 1))
	a.waitFor("the qa series after the reload", func() bool {
		return has(scrape(), `deployments_total{environment="qa",status="success"} 0`, failed)
	})

	// DELETE: the set at 0, not an empty metric.
	push("", "")
	s := scrape()
	if !has(s, append(zero, `deployments_total{environment="qa",status="canceled"} 0`)...) || strings.Contains(s, failed) {
		t.Errorf("after DELETE, want every combination at 0:\n%s", s)
	}
}
