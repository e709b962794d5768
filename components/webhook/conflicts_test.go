package webhook_test

import (
	"net"
	"strings"
	"testing"
	"time"

	_ "github.com/sluicehq/sluice/components/sink"
	"github.com/sluicehq/sluice/components/webhook"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/runtime"
)

// The subtree a receiver mounts conflicts with a path under it, and two
// receivers on one port conflict: load-time diagnostics.
func TestLoadTimeConflicts(t *testing.T) {
	for name, c := range map[string]struct{ src, want string }{
		"path under the prefix": {`
webhook_receiver "d" {
  insecure_no_auth = true
  metric "m" { type = "gauge" }
}
metrics_sink "s" {
  inputs = [webhook_receiver.d.metrics]
  path   = "/push/d/metrics"
}`, "HTTP path used twice"},
		"nested prefixes": {`
webhook_receiver "a" {
  insecure_no_auth = true
  path_prefix = "/hooks"
  metric "m" { type = "gauge" }
}
webhook_receiver "b" {
  insecure_no_auth = true
  path_prefix = "/hooks/b"
  metric "m" { type = "gauge" }
}`, "HTTP path used twice"},
		"same port": {`
webhook_receiver "a" {
  insecure_no_auth = true
  listen = ":2112"
  metric "m" { type = "gauge" }
}
webhook_receiver "b" {
  insecure_no_auth = true
  listen = "127.0.0.1:2112"
  metric "m" { type = "gauge" }
}`, "Listen address used twice"},
	} {
		err := runtime.Validate("c.hcl", []byte(c.src), func(string) (string, bool) { return "", false })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	ok := `
webhook_receiver "d" {
  insecure_no_auth = true
  metric "m" { type = "gauge" }
}
metrics_sink "s" {
  inputs = [webhook_receiver.d.metrics]
  path   = "/push/dd"
}`
	if err := runtime.Validate("c.hcl", []byte(ok), func(string) (string, bool) { return "", false }); err != nil {
		t.Errorf("sibling paths: %v", err)
	}
}

// A changed listen address is bound in Update; the old one keeps serving
// until Commit, and the state moves along.
func TestListenMoves(t *testing.T) {
	body := func(addr string) string {
		return `
  listen = "` + addr + `"
  auth { tokens = ["` + token + `"] }
  metric "m" { type = "gauge" }
`
	}
	h := pipelinetest.New(t, "webhook_receiver", body("127.0.0.1:0"))
	h.Start()
	c := h.Component.(*webhook.Component)
	pipelinetest.Eventually(t, 5*time.Second, func() bool { return c.Addr() != "" }, "never listened")
	first := c.Addr()
	r := &rig{t: t, h: h, url: "http://" + first}
	if code, _ := r.form("/api/m/set", "value=7"); code != 204 {
		t.Fatal(code)
	}
	next := pipelinetest.FreeTCPAddr(t)
	p, err := h.Prepare(body(next))
	if err != nil {
		t.Fatal(err)
	}
	r.mustHave("m 7") // the old address still serves while prepared
	p.Commit()
	r = &rig{t: t, h: h, url: "http://" + next}
	r.mustHave("m 7")
	if c.Addr() != next {
		t.Errorf("Addr = %s, want %s", c.Addr(), next)
	}
	// A taken address fails in Update: nothing changes.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if _, err := h.Prepare(body(taken.Addr().String())); err == nil {
		t.Fatal("Update to a taken address succeeded")
	}
	r.mustHave("m 7")
}
