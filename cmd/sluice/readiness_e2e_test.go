package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// Issue 19 item 18: /-/ready answered 200 while a webhook receiver was
// still restoring its state, its own listener not serving yet (about
// 110 ms; a rollout or load balancer sent pushes to a refused port). The
// restore is held here deterministically: the receiver's log is a FIFO,
// and restoring blocks reading it until the test writes its end.
func TestReadyWaitsForWebhookListener(t *testing.T) {
	data := t.TempDir()
	port := pipelinetest.FreeTCPAddr(t)
	stateDir := filepath.Join(data, "webhook_receiver.r")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(stateDir, "wal-0.log") // the log of a receiver with no snapshot yet
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	a := launch(t, fmt.Sprintf(`
webhook_receiver "r" {
  listen = %q
  auth { tokens = ["t0ken"] }
  metric "pushed_total" { type = "counter" }
}
`, port), launchOpts{storage: data})

	// Bounded requests: a /-/ready that blocks on the restoring component
	// is a failure, not a hang.
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(url string) (int, string) { return doGet(client, url, "", "") }
	webhookServes := func() bool { code, _ := get("http://" + port + "/metrics"); return code == 200 }
	notReady := func() bool {
		code, body := get("http://" + a.addr + "/-/ready")
		return code == 503 && strings.Contains(body, "webhook_receiver.r") && strings.Contains(body, "not served yet")
	}
	// The agent serves and has applied the config; the receiver restores.
	a.waitFor("/-/ready to answer 503 naming the restoring receiver", notReady)
	for range 10 {
		if !notReady() {
			code, body := get("http://" + a.addr + "/-/ready")
			t.Fatalf("/-/ready = %d %q while the receiver is still restoring", code, body)
		}
		if webhookServes() {
			t.Fatal("the receiver serves before its state is restored")
		}
	}

	// Let the restore finish: the log is empty.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	a.waitFor("ready", func() bool { code, _ := get("http://" + a.addr + "/-/ready"); return code == 200 })
	// Ready means every listener serves: at once, no waiting.
	if !webhookServes() {
		t.Error("/-/ready answers 200 but the receiver's listener does not serve")
	}
}
