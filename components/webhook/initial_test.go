package webhook_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

const initialConfig = `
  auth { tokens = ["` + token + `"] }
  metric "deploys_total" {
    type   = "counter"
    labels = ["env", "status"]
    initial_label_values = { env = ["staging", "prod"], status = ["success", "failed"] }
    max_series = 5
  }
  metric "queue_depth" {
    type   = "gauge"
    labels = ["queue"]
    initial_label_values = { queue = ["build", "deploy"] }
  }
  metric "deploy_seconds" {
    type    = "histogram"
    labels  = ["env"]
    buckets = [60, 600]
    initial_label_values = { env = ["staging", "prod"] }
  }
`

// allZero are the pre-created series of initialConfig, at 0.
var allZero = []string{
	`deploys_total{env="prod",status="failed"} 0`,
	`deploys_total{env="prod",status="success"} 0`,
	`deploys_total{env="staging",status="failed"} 0`,
	`deploys_total{env="staging",status="success"} 0`,
	`queue_depth{queue="build"} 0`,
	`queue_depth{queue="deploy"} 0`,
	`deploy_seconds_bucket{env="prod",le="60"} 0`,
	`deploy_seconds_bucket{env="staging",le="+Inf"} 0`,
	`deploy_seconds_count{env="prod"} 0`,
	`deploy_seconds_sum{env="staging"} 0`,
}

// TestInitialLabelValues: every combination exists at 0 before any push,
// for counters, gauges and histograms; DELETE on the metric resets it to
// that set (not to empty); DELETE of one pre-created series puts it back
// at 0; the set counts against max_series.
func TestInitialLabelValues(t *testing.T) {
	r := newRig(t, initialConfig)
	r.mustHave(allZero...)

	for _, p := range []struct{ path, body string }{
		{"/api/deploys_total/inc", "labels=prod,success"},
		{"/api/queue_depth/set", "labels=build&value=7"},
		{"/api/deploy_seconds/observe", "labels=prod&value=90"},
	} {
		if code, body := r.form(p.path, p.body); code != 204 {
			t.Fatalf("%s: %d %s", p.path, code, body)
		}
	}
	r.mustHave(`deploys_total{env="prod",status="success"} 1`, `deploys_total{env="staging",status="failed"} 0`,
		`queue_depth{queue="build"} 7`, `deploy_seconds_count{env="prod"} 1`, `deploy_seconds_bucket{env="prod",le="600"} 1`)

	// 4 pre-created + 1 more = max_series 5: the next new one is refused.
	if code, _ := r.form("/api/deploys_total/inc", "labels=dev,success"); code != 204 {
		t.Fatalf("a fifth series = %d, want accepted (max_series 5)", code)
	}
	if code, body := r.form("/api/deploys_total/inc", "labels=qa,success"); code != 429 || !strings.Contains(body, "max_series") {
		t.Errorf("a sixth series = %d %s: the pre-created series must count against max_series", code, body)
	}

	// DELETE one pre-created series: back at 0, still there.
	if code, _ := r.do("DELETE", "/api/queue_depth", "application/x-www-form-urlencoded", "labels=build", auth); code != 204 {
		t.Fatalf("DELETE one series = %d", code)
	}
	r.mustHave(`queue_depth{queue="build"} 0`)

	// DELETE the metric: the set at 0, the pushed extra series gone.
	for _, m := range []string{"deploys_total", "deploy_seconds"} {
		if code, _ := r.do("DELETE", "/api/"+m, "", "", auth); code != 204 {
			t.Fatalf("DELETE %s = %d", m, code)
		}
	}
	r.mustHave(allZero...)
	if s := r.scrape(); strings.Contains(s, `env="dev"`) {
		t.Errorf("DELETE kept a series outside the initial set:\n%s", s)
	}
}

// TestInitialLabelValuesReloadAndRestart: a reload that changes the set
// adds the new combinations and removes those no longer listed that
// nothing wrote to (a written one stays); the state, pre-created series
// included, survives a restart of Run.
func TestInitialLabelValuesReloadAndRestart(t *testing.T) {
	r := newRig(t, initialConfig)
	r.form("/api/deploys_total/inc", "labels=staging,failed")
	next := strings.Replace(initialConfig, `env = ["staging", "prod"], status`, `env = ["prod", "dev"], status`, 1)
	if err := r.h.Update(next); err != nil {
		t.Fatal(err)
	}
	r.mustHave(`deploys_total{env="dev",status="success"} 0`, `deploys_total{env="dev",status="failed"} 0`,
		`deploys_total{env="prod",status="success"} 0`, `deploys_total{env="staging",status="failed"} 1`)
	if s := r.scrape(); strings.Contains(s, `deploys_total{env="staging",status="success"}`) {
		t.Errorf("a combination no longer listed, never written, is still there:\n%s", s)
	}

	if err := r.h.Stop(); err != nil {
		t.Fatal(err)
	}
	r.h.Start()
	pipelinetest.Eventually(t, 5*time.Second, func() bool {
		return strings.Contains(r.scrape(), `deploys_total{env="staging",status="failed"} 1`)
	}, "state lost across a restart of Run")
	r.mustHave(`deploys_total{env="dev",status="failed"} 0`, `queue_depth{queue="deploy"} 0`)
}

// TestInitialLabelValuesTTL: with a ttl, a pre-created combination whose
// pushed value expires goes back to 0 rather than away.
func TestInitialLabelValuesTTL(t *testing.T) {
	r := newRig(t, `
  auth { tokens = ["`+token+`"] }
  metric "g" {
    type   = "gauge"
    labels = ["k"]
    ttl    = "1s"
    initial_label_values = { k = ["a"] }
  }
`)
	r.form("/api/g/set", "labels=a&value=3")
	r.form("/api/g/set", "labels=b&value=4")
	r.mustHave(`g{k="a"} 3`, `g{k="b"} 4`)
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return !strings.Contains(r.scrape(), `g{k="b"}`) }, "series b never expired")
	r.mustHave(`g{k="a"} 0`)
}

func TestInitialLabelValuesBadConfig(t *testing.T) {
	var vs []string
	for i := range 100 {
		vs = append(vs, strconv.Quote(strconv.Itoa(i)))
	}
	hundred := "[" + strings.Join(vs, ", ") + "]" // 100^3 combinations
	for name, tc := range map[string]struct{ body, want string }{
		"undeclared label": {`metric "m" {
  type = "counter"
  labels = ["a"]
  initial_label_values = { a = ["x"], b = ["y"] }
}`, `label "b" is not among the metric's labels`},
		"label not listed": {`metric "m" {
  type = "counter"
  labels = ["a", "b"]
  initial_label_values = { a = ["x"] }
}`, `label "b" has no values`},
		"no labels": {`metric "m" {
  type = "gauge"
  initial_label_values = { a = ["x"] }
}`, "no labels"},
		"empty list": {`metric "m" {
  type = "counter"
  labels = ["a"]
  initial_label_values = { a = [] }
}`, "empty list"},
		"twice": {`metric "m" {
  type = "counter"
  labels = ["a"]
  initial_label_values = { a = ["x", "x"] }
}`, "listed twice"},
		"over max_series": {`metric "m" {
  type = "histogram"
  labels = ["a", "b"]
  max_series = 3
  initial_label_values = { a = ["1", "2"], b = ["1", "2"] }
}`, "more combinations than max_series (3)"},
		"over the default max_series": {`metric "m" {
  type = "counter"
  labels = ["a", "b", "c"]
  initial_label_values = { a = ` + hundred + `, b = ` + hundred + `, c = ` + hundred + ` }
}`, "more combinations than max_series (10000)"},
	} {
		_, diags := pipelinetest.Decode(t, "webhook_receiver", "auth { tokens = [\"t\"] }\n"+tc.body)
		if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, diags, tc.want)
		}
	}
}
