package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/sluicehq/sluice/internal/testing/pgtest"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// TestRulesAndDashboardsUseExposedMetrics parses every PromQL expression of
// the alert rules and the Grafana dashboards with Prometheus' parser, and
// checks that every metric it selects is one a running Sluice really
// exposes: the real binary, with a statsd_receiver fed gunicorn-shaped lines
// through config/examples/gunicorn-mapping.yml, a postgres_source on a real
// PostgreSQL, a relabel and a metrics_sink. A renamed metric breaks this
// test, not a dashboard in production.
func TestRulesAndDashboardsUseExposedMetrics(t *testing.T) {
	exprs := collectExpressions(t)
	if len(exprs) < 40 {
		t.Fatalf("only %d expressions found in the rules and dashboards", len(exprs))
	}
	known := exposedMetricNames(t)
	if len(known) < 60 {
		t.Fatalf("only %d metric names exposed: %v", len(known), sortedNames(known))
	}
	checked := 0
	for _, e := range exprs {
		names, err := selectedMetrics(e.expr)
		if err != nil {
			t.Errorf("%s: %v\n  %s", e.where, err, e.expr)
			continue
		}
		for _, n := range names {
			checked++
			if !known[n] {
				t.Errorf("%s: metric %s is not exposed by Sluice\n  %s", e.where, n, e.expr)
			}
		}
	}
	if checked < 60 {
		t.Errorf("only %d metric references checked", checked)
	}
	if t.Failed() {
		t.Logf("exposed metrics: %v", sortedNames(known))
	}
}

// TestSelectedMetrics checks the checker: names come from every selector,
// including __name__ matchers, and a selector without a metric name is an
// error (it could not be checked).
func TestSelectedMetrics(t *testing.T) {
	got, err := selectedMetrics(`sum(rate(a_total{x="1"}[5m])) / on() group_left {__name__="c"} or vector(1)`)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a_total", "c"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := selectedMetrics(`{__name__=~"sluice_.*"}`); err == nil {
		t.Error("a selector without a metric name was accepted")
	}
	if _, err := selectedMetrics(`rate(x[5m]`); err == nil {
		t.Error("a syntax error was accepted")
	}
}

type expression struct{ where, expr string }

// grafanaVars replaces Grafana's interval variables, which are not PromQL,
// by a duration. ($job and the like only occur inside label matchers'
// strings, where they parse as they are.)
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

var labelValuesRe = regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)

func collectExpressions(t *testing.T) []expression {
	t.Helper()
	var out []expression
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			out = append(out, expression{where: rulesFile + ": " + r.Alert + r.Record, expr: r.Expr})
		}
	}
	dashboards, err := filepath.Glob("grafana/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(dashboards) < 2 {
		t.Fatalf("dashboards found: %v", dashboards)
	}
	for _, f := range dashboards {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
			Templating struct {
				List []struct {
					Name  string `json:"name"`
					Type  string `json:"type"`
					Query any    `json:"query"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(src, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				out = append(out, expression{where: fmt.Sprintf("%s: panel %q", f, p.Title), expr: grafanaVars.Replace(tg.Expr)})
			}
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			q, _ := v.Query.(string)
			m := labelValuesRe.FindStringSubmatch(q)
			if m == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(SELECTOR, LABEL)", f, v.Name, q)
				continue
			}
			out = append(out, expression{where: fmt.Sprintf("%s: variable %s", f, v.Name), expr: m[1]})
		}
	}
	return out
}

// selectedMetrics returns the metric names an expression selects, sorted.
func selectedMetrics(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	var missing error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			missing = fmt.Errorf("selector %s has no metric name", vs)
			return nil
		}
		set[name] = true
		return nil
	})
	if missing != nil {
		return nil, missing
	}
	return sortedNames(set), nil
}

func sortedNames(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// exposedMetricNames runs the sluice binary with every kind of component the
// rules and dashboards look at, drives traffic through it, and returns the
// names of every series on the agent's /metrics and on the sink (a
// histogram counts as its _bucket, _sum and _count series).
func exposedMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	pg := pgtest.Start(t, pgtest.Options{})
	bin := buildSluice(t)

	dir := t.TempDir()
	mapping, err := os.ReadFile("../config/examples/gunicorn-mapping.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gunicorn-mapping.yml"), mapping, 0o644); err != nil {
		t.Fatal(err)
	}
	statsdAddr, cappedAddr := freeUDPAddr(t), freeUDPAddr(t)
	agentAddr := pipelinetest.FreeTCPAddr(t)
	config := fmt.Sprintf(`
statsd_receiver "app" {
  listen_udp   = %q
  mapping_file = "gunicorn-mapping.yml"
}

# max_series = 1: the second series is dropped (reason max_series).
statsd_receiver "capped" {
  listen_udp = %q
  max_series = 1
}

relabel "app" {
  input = statsd_receiver.app.metrics
  rule {
    action        = "drop"
    source_labels = ["__name__"]
    regex         = "debug_.*"
  }
}

postgres_source "db" {
  dsn              = %q
  default_interval = "1s"
  collectors       = ["database"]
  query "one" {
    sql = "SELECT 1 AS n"
    metric "sluice_test_one" {
      value = "n"
    }
  }
}

metrics_sink "default" {
  inputs = [relabel.app.metrics, statsd_receiver.capped.metrics, postgres_source.db.metrics]
}
`, statsdAddr, cappedAddr, pg.DSN("postgres"))
	cfgPath := filepath.Join(dir, "sluice.hcl")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	out := &pipelinetest.Buffer{}
	cmd := exec.Command(bin, "run", "--server.http.listen-addr", agentAddr, "--storage.path", filepath.Join(dir, "data"), cfgPath)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("sluice output:\n%s", out.String())
		}
	})
	get := func(path string) (map[string]*dto.MetricFamily, error) {
		resp, err := http.Get("http://" + agentAddr + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return nil, fmt.Errorf("%s: %s: %s", path, resp.Status, b)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		return p.TextToMetricFamilies(resp.Body)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			select {
			case err := <-exited:
				t.Fatalf("sluice exited (%v) while waiting for %s:\n%s", err, what, out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("ready", func() bool {
		resp, err := http.Get("http://" + agentAddr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// gunicorn's statsd lines (see the mapping file's header), without and
	// with --statsd-prefix, plus a dropped debug metric, a malformed line
	// and a type conflict.
	gunicorn := []string{
		"gunicorn.requests:1|c|@1.0",
		"gunicorn.request.duration:12.5|ms",
		"gunicorn.request.status.200:1|c|@1.0",
		"gunicorn.request.status.500:1|c|@1.0",
		"gunicorn.workers:4|g",
		"gunicorn.log.critical:1|c|@1.0",
		"web.gunicorn.requests:1|c|@1.0",
		"web.gunicorn.request.duration:3|ms",
		"web.gunicorn.request.status.404:1|c|@1.0",
		"web.gunicorn.workers:2|g",
		"web.gunicorn.log.warning:1|c|@1.0",
		"debug_thing:1|c",
		"this is not statsd",
		"conflict_total:1|c",
		"conflict_total:1|g",
	}
	send := func(addr string, lines ...string) {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, l := range lines {
			if _, err := c.Write([]byte(l)); err != nil {
				t.Fatal(err)
			}
		}
	}
	has := func(fams map[string]*dto.MetricFamily, name string, labelPairs ...string) bool {
		f, ok := fams[name]
		if !ok {
			return false
		}
	metrics:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labelPairs); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labelPairs[i] && lp.GetValue() == labelPairs[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			return true
		}
		return false
	}
	var agent, sink map[string]*dto.MetricFamily
	waitFor("the test traffic to show on /metrics and /metrics/default", func() bool {
		// Resend: UDP on loopback does not lose datagrams, but the
		// receivers may not read their sockets yet right after ready.
		send(statsdAddr, gunicorn...)
		send(cappedAddr, "first:1|c", "second:1|c")
		var err1, err2 error
		sink, err1 = get("/metrics/default")
		agent, err2 = get("/metrics")
		if err1 != nil || err2 != nil {
			return false
		}
		return has(sink, "gunicorn_log_messages_total", "app", "web", "level", "warning") &&
			has(sink, "gunicorn_request_duration_seconds", "app", "web") &&
			has(sink, "pg_up") && has(sink, "sluice_test_one") &&
			has(agent, "statsd_exporter_events_error_total", "reason", "max_series") &&
			has(agent, "statsd_exporter_events_conflict_total") &&
			has(agent, "statsd_exporter_sample_errors_total") &&
			has(agent, "sluice_relabel_series_dropped_total", "reason", "rule") &&
			has(agent, "sluice_metrics_sink_scrapes_total", "code", "200") &&
			has(agent, "sluice_postgres_queries_total", "query", "one", "status", "timeout")
	})
	known := map[string]bool{}
	for _, fams := range []map[string]*dto.MetricFamily{agent, sink} {
		for name, f := range fams {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				known[name+"_bucket"], known[name+"_sum"], known[name+"_count"] = true, true, true
			case dto.MetricType_SUMMARY:
				known[name], known[name+"_sum"], known[name+"_count"] = true, true, true
			default:
				known[name] = true
			}
		}
	}
	return known
}

// buildSluice compiles the sluice binary into a temporary directory.
func buildSluice(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sluice")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/sluice").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeUDPAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}
