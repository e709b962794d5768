package webhook

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/sluicehq/sluice/jsonlimit"
)

// FuzzParsePushBody: any body of any content type yields a pushBody or an
// error, never a panic; what parses resolves against a metric or errors.
func FuzzParsePushBody(f *testing.F) {
	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	_ = w.WriteField("value", "18000")
	_ = w.WriteField("labels", "coordinator_pipeline,success")
	w.Close()
	f.Add(w.FormDataContentType(), mp.String())
	f.Add("application/x-www-form-urlencoded", "value=1&labels=a,b")
	f.Add("", "value=NaN")
	f.Add("application/json", `{"value": 18000, "labels": {"pipeline": "p", "status": "s"}}`)
	f.Add("application/json", `{"value": "1e3", "labels": ["a", "b"]}`)
	f.Add("application/json", `{"labels": "a,b"}`)
	f.Add("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\n1\r\n--x--\r\n")
	f.Add("text/plain", "1")
	d := &metricDef{name: "m", typ: "histogram", labels: []string{"pipeline", "status"}, buckets: []float64{1, 2}}
	f.Fuzz(func(t *testing.T, ctype, body string) {
		pb, err := parsePushBody(context.Background(), ctype, []byte(body), url.Values{})
		if err != nil {
			if err.Error() == "" || strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			return
		}
		labels, _, err := pb.resolve(d, "observe")
		if err == nil && len(labels) != 2 {
			t.Errorf("resolved %d labels for a metric with 2", len(labels))
		}
	})
}

// FuzzRules: rules over arbitrary JSON produce ops that name the metric
// and carry its label count, or rule errors; never a panic.
func FuzzRules(f *testing.F) {
	fixture, err := os.ReadFile("testdata/gitlab_job_event.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(fixture))
	f.Add(`{"object_kind": "build", "build_status": "failed"}`)
	f.Add(`{"object_kind": "build", "build_status": "success", "build_duration": "12", "project_name": 3, "build_stage": null, "retries_count": -1}`)
	f.Add(`[]`)
	f.Add(`null`)
	f.Add(`{"object_kind": ["build"]}`)
	parse := func(src string) hcl.Expression {
		e, diags := hclsyntax.ParseExpression([]byte(src), "rule.hcl", hcl.InitialPos)
		if diags.HasErrors() {
			f.Fatal(diags)
		}
		return e
	}
	hist := &metricDef{name: "ci_job_duration_seconds", typ: "histogram", labels: []string{"project", "stage", "status"}, buckets: []float64{1}}
	ctr := &metricDef{name: "ci_job_retries_total", typ: "counter", labels: []string{"project", "stage"}}
	rules := []rule{{
		when: parse(`event.object_kind == "build" && event.build_status != "running"`),
		actions: []action{
			{verb: "observe", metric: hist, value: parse(`event.build_duration`), labels: parse(`{ project = event.project_name, stage = event.build_stage, status = event.build_status }`)},
			{verb: "add", metric: ctr, value: parse(`event.retries_count`), labels: parse(`{ project = lower(event.project_name), stage = headers.x }`)},
		},
	}}
	keep := eventPaths(rules)
	f.Fuzz(func(t *testing.T, body string) {
		headers := map[string]string{"x": "h"}
		ctx, err := eventContext(context.Background(), []byte(body), jsonlimit.Limits{}, keep, headers)
		if err != nil {
			return
		}
		ops, errs := evalRules(rules, ctx, 1)
		// Decoding only what the rules read gives what the whole
		// document gives.
		whole, err := eventContext(context.Background(), []byte(body), jsonlimit.Limits{}, jsonlimit.All(), headers)
		if err != nil {
			t.Fatalf("the whole document fails where the projection did not: %v", err)
		}
		wops, werrs := evalRules(rules, whole, 1)
		if !reflect.DeepEqual(ops, wops) || len(errs) != len(werrs) {
			t.Errorf("projected: %+v %v; whole: %+v %v", ops, errs, wops, werrs)
		}
		for _, o := range ops {
			want := map[string]int{"ci_job_duration_seconds": 3, "ci_job_retries_total": 2}[o.Metric]
			if want == 0 || len(o.Labels) != want {
				t.Errorf("op %+v: wrong metric or label count", o)
			}
		}
		// Applying them never panics and never stores a malformed series.
		s := newStore()
		s.setDefsLocked(map[string]*metricDef{hist.name: hist, ctr.name: ctr}, 0)
		s.apply(ops)
	})
}
