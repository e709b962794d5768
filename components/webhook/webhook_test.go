package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/components/webhook"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

const token, token2 = "s3cret-token", "next-token"

const baseConfig = `
  auth { tokens = ["` + token + `", "` + token2 + `"] }
  metric "deployment_duration_seconds" {
    type    = "histogram"
    help    = "Duration of a deployment pipeline."
    labels  = ["pipeline", "status"]
    buckets = [60, 300, 900, 1800, 3600, 7200, 14400, 28800]
  }
  metric "jobs_total" {
    type   = "counter"
    labels = ["project"]
  }
  metric "queue" {
    type = "gauge"
  }
  metric "ci_job_duration_seconds" {
    type    = "histogram"
    labels  = ["project", "stage", "status"]
    buckets = linear(30, 30, 4)
  }
  metric "ci_job_retries_total" {
    type   = "counter"
    labels = ["project", "stage"]
  }
  webhook "gitlab_jobs" {
    kind   = "gitlab"
    secret = "gl-secret"
    rule {
      when = event.object_kind == "build" && event.build_status != "running"
      observe {
        metric = "ci_job_duration_seconds"
        value  = event.build_duration
        labels = { project = event.project_name, stage = event.build_stage, status = event.build_status }
      }
      add {
        metric = "ci_job_retries_total"
        value  = event.retries_count
        labels = { project = event.project_name, stage = event.build_stage }
      }
    }
  }
  webhook "gh" {
    kind   = "github"
    secret = "gh-secret"
    rule {
      inc {
        metric = "jobs_total"
        labels = { project = event.repository.full_name }
      }
    }
  }
  webhook "std" {
    kind   = "generic"
    secret = "whsec_` + "c2VjcmV0LWtleS1ieXRlcw==" + `"
    rule {
      set {
        metric = "queue"
        value  = event.depth
      }
    }
  }
`

type rig struct {
	t   *testing.T
	h   *pipelinetest.Harness
	url string
}

func newRig(t *testing.T, body string) *rig {
	t.Helper()
	return newRigOpts(t, body)
}

func newRigOpts(t *testing.T, body string, opts ...pipelinetest.Option) *rig {
	t.Helper()
	mux := pipelinetest.NewMux()
	h := pipelinetest.New(t, "webhook_receiver", body, append([]pipelinetest.Option{pipelinetest.WithMounter(mux), pipelinetest.WithID("d")}, opts...)...)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	h.Start()
	r := &rig{t: t, h: h, url: srv.URL + "/push/d"}
	pipelinetest.Eventually(t, 5*time.Second, func() bool {
		resp, err := http.Get(r.url + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "receiver never served")
	return r
}

func (r *rig) do(method, path, ctype, body string, hdr map[string]string) (int, string) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var auth = map[string]string{"X-Private-Token": token}

func (r *rig) form(path, body string) (int, string) {
	return r.do("POST", path, "application/x-www-form-urlencoded", body, auth)
}

func (r *rig) scrape() string {
	r.t.Helper()
	_, body := r.do("GET", "/metrics", "", "", nil)
	return body
}

func (r *rig) mustHave(lines ...string) {
	r.t.Helper()
	s := r.scrape()
	for _, l := range lines {
		if !strings.Contains(s, l+"\n") {
			r.t.Errorf("scrape lacks %q:\n%s", l, s)
		}
	}
}

func multipartBody(t *testing.T, fields ...string) (string, string) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for i := 0; i < len(fields); i += 2 {
		if err := w.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return w.FormDataContentType(), b.String()
}

func TestVerbsAndBodies(t *testing.T) {
	r := newRig(t, baseConfig)
	ct, mp := multipartBody(t, "value", "18000", "labels", "coordinator_pipeline,success")
	if code, body := r.do("POST", "/api/deployment_duration_seconds/observe", ct, mp, auth); code != 204 {
		t.Fatalf("multipart observe = %d %s", code, body)
	}
	if code, body := r.do("POST", "/api/deployment_duration_seconds/observe", "application/json",
		`{"value": 50, "labels": {"pipeline": "coordinator_pipeline", "status": "success"}}`, auth); code != 204 {
		t.Fatalf("JSON observe = %d %s", code, body)
	}
	for _, c := range []struct{ path, body string }{
		{"/api/jobs_total/inc", "labels=a"},
		{"/api/jobs_total/add", "labels=a&value=2.5"},
		{"/api/queue/set", "value=10"},
		{"/api/queue/dec", ""},
		{"/api/queue/add", "value=-3"},
		{"/api/queue/inc", ""},
	} {
		if code, body := r.form(c.path, c.body); code != 204 {
			t.Errorf("%s %q = %d %s", c.path, c.body, code, body)
		}
	}
	r.mustHave(
		`deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="60"} 1`,
		`deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="14400"} 1`,
		`deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="28800"} 2`,
		`deployment_duration_seconds_sum{pipeline="coordinator_pipeline",status="success"} 18050`,
		`deployment_duration_seconds_count{pipeline="coordinator_pipeline",status="success"} 2`,
		`jobs_total{project="a"} 3.5`,
		`queue 7`,
	)
	// DELETE with labels removes one series; without, every series.
	r.form("/api/jobs_total/inc", "labels=b")
	if code, body := r.do("DELETE", "/api/jobs_total?labels=a", "", "", auth); code != 204 {
		t.Fatalf("DELETE one = %d %s", code, body)
	}
	s := r.scrape()
	if strings.Contains(s, `jobs_total{project="a"}`) || !strings.Contains(s, `jobs_total{project="b"} 1`) {
		t.Errorf("after DELETE of a:\n%s", s)
	}
	if code, _ := r.do("DELETE", "/api/deployment_duration_seconds", "", "", auth); code != 204 {
		t.Fatalf("DELETE all = %d", code)
	}
	if s := r.scrape(); strings.Contains(s, "deployment_duration_seconds_count") {
		t.Errorf("after reset:\n%s", s)
	}
}

func TestErrorCodes(t *testing.T) {
	r := newRig(t, baseConfig+"\n  max_body = 100\n")
	for _, c := range []struct {
		method, path, ctype, body string
		hdr                       map[string]string
		want                      int
		msg                       string
	}{
		{"POST", "/api/queue/set", "", "value=NaN", auth, 400, "finite"},
		{"POST", "/api/queue/set", "", "value=Inf", auth, 400, "finite"},
		{"POST", "/api/queue/set", "", "value=abc", auth, 400, "not a number"},
		{"POST", "/api/queue/set", "", "", auth, 400, "missing"},
		{"POST", "/api/jobs_total/inc", "", "labels=a,b", auth, 400, "labels"},
		{"POST", "/api/jobs_total/inc", "", "", auth, 400, "labels"},
		{"POST", "/api/jobs_total/add", "", "labels=a&value=-1", auth, 400, "only goes up"},
		{"POST", "/api/jobs_total/observe", "", "labels=a&value=1", auth, 400, "cannot observe a counter"},
		{"POST", "/api/deployment_duration_seconds/set", "", "value=1&labels=a,b", auth, 400, "cannot set"},
		{"POST", "/api/queue/set", "text/xml", "<x/>", auth, 400, "Content-Type"},
		{"POST", "/api/queue/set", "application/json", `{"value": "x"`, auth, 400, "JSON"},
		{"POST", "/api/queue/set", "application/json", `{"value": 1, "other": 2}`, auth, 400, "JSON"},
		{"POST", "/api/nope/inc", "", "", auth, 404, "unknown metric"},
		{"POST", "/api/queue/frobnicate", "", "", auth, 404, "unknown verb"},
		{"POST", "/hooks/nope", "", "{}", nil, 404, "unknown webhook"},
		{"POST", "/elsewhere", "", "", auth, 404, ""},
		{"GET", "/api/queue/set", "", "", auth, 405, ""},
		{"PUT", "/api/queue", "", "", auth, 405, ""},
		{"GET", "/hooks/gh", "", "", nil, 405, ""},
		{"POST", "/api/queue/set", "", "value=1&labels=" + strings.Repeat("x", 200), auth, 413, "larger"},
		{"POST", "/api/queue/set", "", "value=1", nil, 401, "token"},
		{"POST", "/api/queue/set", "", "value=1", map[string]string{"X-Private-Token": "wrong"}, 401, "token"},
		{"POST", "/api/queue/set", "", "value=1", map[string]string{"Authorization": "Bearer " + token + "x"}, 401, "token"},
		{"POST", "/api/queue/set", "", "value=1", map[string]string{"X-Private-Token": ""}, 401, "token"},
	} {
		code, body := r.do(c.method, c.path, c.ctype, c.body, c.hdr)
		if code != c.want || !strings.Contains(body, c.msg) || strings.Count(strings.TrimSpace(body), "\n") > 0 {
			t.Errorf("%s %s %q = %d %q, want %d containing %q on one line", c.method, c.path, c.body, code, body, c.want, c.msg)
		}
	}
	// Both rotated tokens work, in either header.
	for _, h := range []map[string]string{{"X-Private-Token": token}, {"Authorization": "Bearer " + token2}, {"X-Private-Token": token2}} {
		if code, body := r.do("POST", "/api/queue/inc", "", "", h); code != 204 {
			t.Errorf("token %v = %d %s", h, code, body)
		}
	}
	r.mustHave("queue 3")
	reg := r.h.Registry
	if n := metricValue(t, reg, "sluice_webhook_auth_failures_total", "route", "api"); n != 4 {
		t.Errorf("auth failures = %v, want 4", n)
	}
	if n := metricValue(t, reg, "sluice_webhook_requests_total", "route", "api", "code", "400"); n < 11 {
		t.Errorf("requests{code=400} = %v", n)
	}
}

func TestAuthConfigFailsClosed(t *testing.T) {
	for name, body := range map[string]string{
		"no auth block":  `metric "m" { type = "gauge" }`,
		"empty list":     `auth { tokens = [] }` + "\n" + `metric "m" { type = "gauge" }`,
		"empty token":    `auth { tokens = ["visible-tok3n", ""] }` + "\n" + `metric "m" { type = "gauge" }`,
		"unset env":      `auth { tokens = [env("NOPE_UNSET_TOKEN", "")] }` + "\n" + `metric "m" { type = "gauge" }`,
		"webhook secret": `auth { tokens = ["ok"] }` + "\n" + `metric "m" { type = "gauge" }` + "\n" + `webhook "w" {` + "\nkind = \"gitlab\"\nrule {\nset {\nmetric = \"m\"\nvalue = 1\n}\n}\n}",
	} {
		if _, diags := pipelinetest.Decode(t, "webhook_receiver", body); !diags.HasErrors() {
			t.Errorf("%s: accepted; want a config error", name)
		} else if strings.Contains(diags.Error(), "visible-tok3n") && name == "empty token" {
			t.Errorf("%s: diagnostic shows a token: %s", name, diags.Error())
		}
	}
	if _, diags := pipelinetest.Decode(t, "webhook_receiver", "insecure_no_auth = true\n"+`metric "m" { type = "gauge" }`); diags.HasErrors() {
		t.Errorf("insecure_no_auth: %s", diags.Error())
	}
	r := newRig(t, "insecure_no_auth = true\n"+`metric "m" { type = "gauge" }`)
	if code, body := r.do("POST", "/api/m/set", "", "value=4", nil); code != 204 {
		t.Errorf("insecure push = %d %s", code, body)
	}
}

func TestBadConfig(t *testing.T) {
	for name, body := range map[string]string{
		"bad type":       `metric "m" { type = "summary" }`,
		"bad name":       `metric "m-x" { type = "gauge" }`,
		"le label":       `metric "m" { type = "histogram"` + "\n" + `labels = ["le"] }`,
		"buckets order":  `metric "m" { type = "histogram"` + "\n" + `buckets = [2, 1] }`,
		"bad linear":     `metric "m" { type = "histogram"` + "\n" + `buckets = linear(1, 0, 3) }`,
		"bad exp":        `metric "m" { type = "histogram"` + "\n" + `buckets = exponential(1, 1, 3) }`,
		"unknown var":    `metric "m" { type = "gauge" }` + "\n" + `webhook "w" {` + "\nkind = \"gitlab\"\nsecret=\"x\"\nrule {\nwhen = foo.bar\nset {\nmetric = \"m\"\nvalue = 1\n}\n}\n}",
		"unknown metric": `metric "m" { type = "gauge" }` + "\n" + `webhook "w" {` + "\nkind = \"gitlab\"\nsecret=\"x\"\nrule {\nset {\nmetric = \"n\"\nvalue = 1\n}\n}\n}",
		"wrong verb":     `metric "m" { type = "gauge" }` + "\n" + `webhook "w" {` + "\nkind = \"gitlab\"\nsecret=\"x\"\nrule {\nobserve {\nmetric = \"m\"\nvalue = 1\n}\n}\n}",
		"bad whsec":      `metric "m" { type = "gauge" }` + "\n" + `webhook "w" {` + "\nkind = \"generic\"\nsecret=\"nope\"\nrule {\nset {\nmetric = \"m\"\nvalue = 1\n}\n}\n}",
		"prefix":         `path_prefix = "/api/x"` + "\n" + `metric "m" { type = "gauge" }`,
	} {
		if _, diags := pipelinetest.Decode(t, "webhook_receiver", "auth { tokens = [\"t\"] }\n"+body); !diags.HasErrors() {
			t.Errorf("%s: accepted; want a config error", name)
		}
	}
}

func gitlabFixture(t *testing.T) string {
	b, err := os.ReadFile("testdata/gitlab_job_event.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGitLabJobWebhook(t *testing.T) {
	r := newRig(t, baseConfig)
	ev := gitlabFixture(t)
	hdr := map[string]string{"X-Gitlab-Token": "gl-secret", "X-Gitlab-Event": "Job Hook", "X-Gitlab-Event-UUID": "uuid-1"}
	if code, body := r.do("POST", "/hooks/gitlab_jobs", "application/json", ev, hdr); code != 200 {
		t.Fatalf("webhook = %d %s", code, body)
	}
	// The same delivery again is a duplicate, dropped and counted.
	if code, body := r.do("POST", "/hooks/gitlab_jobs", "application/json", ev, hdr); code != 200 || !strings.Contains(body, "duplicate") {
		t.Fatalf("duplicate = %d %s", code, body)
	}
	// A running job matches no rule.
	hdr["X-Gitlab-Event-UUID"] = "uuid-2"
	running := strings.Replace(ev, `"build_status": "success"`, `"build_status": "running"`, 1)
	r.do("POST", "/hooks/gitlab_jobs", "application/json", running, hdr)
	r.mustHave(
		`ci_job_duration_seconds_bucket{project="gitlab-org/gitlab-test",stage="test",status="success",le="90"} 0`,
		`ci_job_duration_seconds_bucket{project="gitlab-org/gitlab-test",stage="test",status="success",le="120"} 1`,
		`ci_job_duration_seconds_sum{project="gitlab-org/gitlab-test",stage="test",status="success"} 94.311`,
		`ci_job_duration_seconds_count{project="gitlab-org/gitlab-test",stage="test",status="success"} 1`,
		`ci_job_retries_total{project="gitlab-org/gitlab-test",stage="test"} 2`,
	)
	if n := metricValue(t, r.h.Registry, "sluice_webhook_duplicates_total", "route", "hook"); n != 1 {
		t.Errorf("duplicates = %v", n)
	}
	// Wrong and missing token.
	for _, h := range []map[string]string{{"X-Gitlab-Token": "nope"}, {}} {
		if code, _ := r.do("POST", "/hooks/gitlab_jobs", "application/json", ev, h); code != 401 {
			t.Errorf("token %v = %d, want 401", h, code)
		}
	}
	// A pipeline event does not match (&& stops at object_kind); a job
	// event without build_duration is a rule error, counted, not a failure.
	hdr["X-Gitlab-Event-UUID"] = "uuid-3"
	if code, _ := r.do("POST", "/hooks/gitlab_jobs", "application/json", `{"object_kind": "pipeline"}`, hdr); code != 200 {
		t.Errorf("pipeline event = %d", code)
	}
	hdr["X-Gitlab-Event-UUID"] = "uuid-5"
	if code, _ := r.do("POST", "/hooks/gitlab_jobs", "application/json", `{"object_kind": "build", "build_status": "failed"}`, hdr); code != 200 {
		t.Errorf("job event without fields = %d", code)
	}
	if n := metricValue(t, r.h.Registry, "sluice_webhook_rule_errors_total", "webhook", "gitlab_jobs"); n != 1 {
		t.Errorf("rule errors = %v, want 1", n)
	}
	// Not JSON: 400.
	hdr["X-Gitlab-Event-UUID"] = "uuid-4"
	if code, _ := r.do("POST", "/hooks/gitlab_jobs", "application/json", `{`, hdr); code != 400 {
		t.Errorf("bad JSON = %d", code)
	}
}

func TestGitHubSignature(t *testing.T) {
	r := newRig(t, baseConfig)
	body := `{"action": "completed", "repository": {"full_name": "o/r"}}`
	mac := hmac.New(sha256.New, []byte("gh-secret"))
	mac.Write([]byte(body))
	good := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if code, b := r.do("POST", "/hooks/gh", "application/json", body, map[string]string{"X-Hub-Signature-256": good, "X-GitHub-Delivery": "d1"}); code != 200 {
		t.Fatalf("signed = %d %s", code, b)
	}
	for _, sig := range []string{"", "sha256=00", "sha256=zz", good[:len(good)-2] + "00"} {
		if code, _ := r.do("POST", "/hooks/gh", "application/json", body, map[string]string{"X-Hub-Signature-256": sig}); code != 401 {
			t.Errorf("signature %q = %d, want 401", sig, code)
		}
	}
	// Signed body altered.
	if code, _ := r.do("POST", "/hooks/gh", "application/json", body+" ", map[string]string{"X-Hub-Signature-256": good}); code != 401 {
		t.Errorf("altered body = %d, want 401", code)
	}
	r.mustHave(`jobs_total{project="o/r"} 1`)
}

func TestStandardWebhooksSignature(t *testing.T) {
	r := newRig(t, baseConfig)
	key, _ := base64.StdEncoding.DecodeString("c2VjcmV0LWtleS1ieXRlcw==")
	sign := func(id string, ts int64, body string) string {
		m := hmac.New(sha256.New, key)
		fmt.Fprintf(m, "%s.%d.%s", id, ts, body)
		return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	body := `{"depth": 12}`
	now := time.Now().Unix()
	hdr := func(id string, ts int64, sig string) map[string]string {
		return map[string]string{"webhook-id": id, "webhook-timestamp": strconv.FormatInt(ts, 10), "webhook-signature": sig}
	}
	if code, b := r.do("POST", "/hooks/std", "application/json", body, hdr("msg_1", now, "v1,Zm9v "+sign("msg_1", now, body))); code != 200 {
		t.Fatalf("signed = %d %s", code, b)
	}
	r.mustHave("queue 12")
	// A captured delivery replayed within the tolerance is a duplicate,
	// whatever unsigned id header is added: the key is the signed
	// webhook-id.
	for _, extra := range []map[string]string{nil, {"Idempotency-Key": "fresh-1"}, {"X-GitHub-Delivery": "fresh-2", "X-Gitlab-Event-UUID": "fresh-3"}} {
		h := hdr("msg_1", now, sign("msg_1", now, body))
		for k, v := range extra {
			h[k] = v
		}
		if code, b := r.do("POST", "/hooks/std", "application/json", body, h); code != 200 || !strings.Contains(b, "duplicate") {
			t.Errorf("replay with %v = %d %q, want a duplicate", extra, code, b)
		}
	}
	if n := metricValue(t, r.h.Registry, "sluice_webhook_duplicates_total", "route", "hook"); n != 3 {
		t.Errorf("duplicates = %v, want 3", n)
	}
	for name, h := range map[string]map[string]string{
		"old timestamp": hdr("msg_2", now-3600, sign("msg_2", now-3600, body)),
		"wrong id":      hdr("msg_3", now, sign("msg_x", now, body)),
		"no signature":  hdr("msg_4", now, ""),
		"v2 only":       hdr("msg_5", now, strings.Replace(sign("msg_5", now, body), "v1,", "v2,", 1)),
	} {
		if code, _ := r.do("POST", "/hooks/std", "application/json", body, h); code != 401 {
			t.Errorf("%s = %d, want 401", name, code)
		}
	}
}

func TestWebhookBodyLimit(t *testing.T) {
	r := newRig(t, strings.Replace(baseConfig, `kind   = "github"`, "kind = \"github\"\nmax_body = 64", 1))
	big := `{"repository": {"full_name": "` + strings.Repeat("x", 100) + `"}}`
	// A well-formed signature gets the body read (and refused); without
	// one the delivery is refused before its body is read.
	sig := map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("0", 64)}
	if code, _ := r.do("POST", "/hooks/gh", "application/json", big, sig); code != 413 {
		t.Errorf("oversized webhook = %d, want 413", code)
	}
	if code, _ := r.do("POST", "/hooks/gh", "application/json", big, nil); code != 401 {
		t.Errorf("oversized webhook without a signature = %d, want 401", code)
	}
}

func TestTTLAndMaxSeries(t *testing.T) {
	r := newRig(t, `
  auth { tokens = ["`+token+`"] }
  metric "short" {
    type       = "gauge"
    labels     = ["k"]
    ttl        = "1s"
  }
  metric "few" {
    type       = "counter"
    labels     = ["k"]
    max_series = 2
  }
`)
	r.form("/api/short/set", "labels=a&value=1")
	r.mustHave(`short{k="a"} 1`)
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return !strings.Contains(r.scrape(), `short{k="a"}`) }, "series never expired")
	for _, k := range []string{"a", "b"} {
		if code, _ := r.form("/api/few/inc", "labels="+k); code != 204 {
			t.Fatalf("series %s = %d", k, code)
		}
	}
	if code, body := r.form("/api/few/inc", "labels=c"); code != 429 || !strings.Contains(body, "max_series") {
		t.Errorf("third series = %d %s, want 429", code, body)
	}
	if code, _ := r.form("/api/few/inc", "labels=a"); code != 204 {
		t.Errorf("existing series after the limit = %d", code)
	}
	if n := metricValue(t, r.h.Registry, "sluice_webhook_series_refused_total", "metric", "few"); n != 1 {
		t.Errorf("refused = %v", n)
	}
	pipelinetest.Eventually(t, 5*time.Second, func() bool {
		return metricValue(t, r.h.Registry, "sluice_webhook_series_expired_total") == 1
	}, "expiry not counted")
}

func TestConcurrentPushes(t *testing.T) {
	r := newRig(t, baseConfig)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan string, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if code, body := r.form("/api/jobs_total/inc", "labels=p"+strconv.Itoa(w%2)); code != 204 {
					errs <- fmt.Sprintf("%d %s", code, body)
				}
				r.form("/api/deployment_duration_seconds/observe", "value=100&labels=x,y")
				if i%10 == 0 {
					r.scrape()
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	r.mustHave(`jobs_total{project="p0"} 200`, `jobs_total{project="p1"} 200`,
		`deployment_duration_seconds_count{pipeline="x",status="y"} 400`)
}

func TestReloadKeepsState(t *testing.T) {
	r := newRig(t, baseConfig)
	r.form("/api/jobs_total/inc", "labels=a")
	r.form("/api/queue/set", "value=5")
	// help changed, a metric added, "queue" removed: jobs_total kept.
	next := strings.Replace(baseConfig, `metric "queue" {
    type = "gauge"
  }`, `metric "added" {
    type = "gauge"
  }`, 1)
	next = strings.Replace(next, `    type   = "counter"
    labels = ["project"]`, `    type   = "counter"
    help   = "New help."
    labels = ["project"]`, 1)
	next = strings.Replace(next, `metric = "queue"`, `metric = "added"`, 1)
	if err := r.h.Update(next); err != nil {
		t.Fatal(err)
	}
	s := r.scrape()
	if !strings.Contains(s, `jobs_total{project="a"} 1`) || !strings.Contains(s, "New help.") || strings.Contains(s, "queue") {
		t.Errorf("after reload:\n%s", s)
	}
	if code, _ := r.form("/api/added/set", "value=1"); code != 204 {
		t.Errorf("added metric = %d", code)
	}
	// Changing a kept metric's labels is refused; nothing changes.
	bad := strings.Replace(next, `labels = ["project"]`, `labels = ["project", "x"]`, 1)
	if err := r.h.Update(bad); err == nil || !strings.Contains(err.Error(), "rename") {
		t.Errorf("label change: %v, want a refusal", err)
	}
	r.mustHave(`jobs_total{project="a"} 1`)
	// Run stopped and started again on the same instance: state kept
	// (restored from its own snapshot).
	if err := r.h.Stop(); err != nil {
		t.Fatal(err)
	}
	r.h.Start()
	pipelinetest.Eventually(t, 5*time.Second, func() bool { return strings.Contains(r.scrape(), `jobs_total{project="a"} 1`) }, "state lost across Run restart")
}

func TestOwnListener(t *testing.T) {
	h := pipelinetest.New(t, "webhook_receiver", `
  listen = "127.0.0.1:0"
  auth { tokens = ["`+token+`"] }
  metric "m" { type = "gauge" }
`)
	h.Start()
	c := h.Component.(*webhook.Component)
	pipelinetest.Eventually(t, 5*time.Second, func() bool { return c.Addr() != "" }, "never listened")
	r := &rig{t: t, h: h, url: "http://" + c.Addr()}
	if code, body := r.form("/api/m/set", "value=3"); code != 204 {
		t.Fatalf("push = %d %s", code, body)
	}
	r.mustHave("m 3")
}

// metricValue is the value of a self-metric series (0 when absent).
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

// Failed auth is counted and logged without the token, the configured
// tokens or the webhook secret.
func TestAuthFailuresNotLoggedWithSecrets(t *testing.T) {
	var logs pipelinetest.Buffer
	mux := pipelinetest.NewMux()
	h := pipelinetest.New(t, "webhook_receiver", baseConfig, pipelinetest.WithMounter(mux), pipelinetest.WithID("d"),
		pipelinetest.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	h.Start()
	r := &rig{t: t, h: h, url: srv.URL + "/push/d"}
	pipelinetest.Eventually(t, 5*time.Second, func() bool { code, _ := r.do("GET", "/metrics", "", "", nil); return code == 200 }, "not serving")
	const presented = "presented-wrong-token-9f8e"
	if code, _ := r.do("POST", "/api/queue/set", "", "value=1", map[string]string{"X-Private-Token": presented}); code != 401 {
		t.Fatalf("wrong token = %d", code)
	}
	if code, _ := r.do("POST", "/hooks/gitlab_jobs", "application/json", "{}", map[string]string{"X-Gitlab-Token": presented}); code != 401 {
		t.Fatalf("wrong webhook token = %d", code)
	}
	pipelinetest.Eventually(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "refused") }, "auth failure not logged")
	for _, secret := range []string{presented, token, token2, "gl-secret"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log contains %q:\n%s", secret, logs.String())
		}
	}
	if n := metricValue(t, h.Registry, "sluice_webhook_auth_failures_total", "route", "hook:gitlab_jobs"); n != 1 {
		t.Errorf("webhook auth failures = %v", n)
	}
}
