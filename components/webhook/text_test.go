package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/components/webhook"
	"github.com/sluicehq/sluice/encoded"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// sameText checks that the receiver's GatherText is its Gather encoded,
// byte for byte, and returns it. A ttl can expire a series between two
// calls: Gather is compared only when the texts before and after it are
// equal (expiry only moves one way, so nothing expired in between).
func sameText(t *testing.T, h *pipelinetest.Harness) string {
	t.Helper()
	c := h.Component.(*webhook.Component)
	text := func() string {
		fams, err := c.GatherText()
		if err != nil {
			t.Fatal(err)
		}
		return joinText(fams)
	}
	for attempt := 0; ; attempt++ {
		before := text()
		mfs, err := c.Gather()
		if err != nil {
			t.Fatal(err)
		}
		want, err := encoded.Encode(mfs)
		if err != nil {
			t.Fatal(err)
		}
		if after := text(); after != before && attempt < 5 {
			continue // something expired meanwhile
		}
		if exp := joinText(want); before != exp {
			t.Fatalf("GatherText differs from Gather encoded:\n--- GatherText\n%s--- Gather\n%s", before, exp)
		}
		return before
	}
}

func joinText(fams []encoded.Family) string {
	var b strings.Builder
	for _, f := range fams {
		b.Write(f.Text)
	}
	return b.String()
}

const textConfig = baseConfig + `
  metric "short" {
    type   = "gauge"
    labels = ["k"]
    ttl    = "1s"
    initial_label_values = { k = ["kept"] }
  }
`

// TestGatherTextEqualsGather: through the push API, the GitLab, GitHub
// and Standard Webhooks paths, deletes, ttl expiry, a reload and a restore
// from the state on disk, GatherText stays Gather encoded.
func TestGatherTextEqualsGather(t *testing.T) {
	dir := t.TempDir()
	r := newRigAt(t, textConfig, dir)
	if s := sameText(t, r.h); !strings.Contains(s, `short{k="kept"} 0`) {
		t.Fatalf("pre-created series missing:\n%s", s)
	}

	// Push API: every verb, labels in both forms.
	for _, req := range []struct{ path, body string }{
		{"/api/deployment_duration_seconds/observe", "value=18000&labels=coordinator_pipeline,success"},
		{"/api/deployment_duration_seconds/observe", "value=20&labels=a,failed"},
		{"/api/jobs_total/inc", "labels=p1"},
		{"/api/jobs_total/add", "labels=p0&value=3"},
		{"/api/queue/set", "value=7"},
		{"/api/queue/dec", "value=2"},
		{"/api/short/set", "labels=gone&value=5"},
		{"/api/short/set", "labels=kept&value=5"},
	} {
		if code, body := r.form(req.path, req.body); code != 204 {
			t.Fatalf("%s = %d %s", req.path, code, body)
		}
		sameText(t, r.h)
	}

	// GitLab, GitHub, Standard Webhooks.
	ev := gitlabFixture(t)
	if code, body := r.do("POST", "/hooks/gitlab_jobs", "application/json", ev, map[string]string{"X-Gitlab-Token": "gl-secret", "X-Gitlab-Event-UUID": "u1"}); code != 200 {
		t.Fatalf("gitlab = %d %s", code, body)
	}
	sameText(t, r.h)
	ghBody := `{"repository": {"full_name": "o/r"}}`
	mac := hmac.New(sha256.New, []byte("gh-secret"))
	mac.Write([]byte(ghBody))
	if code, body := r.do("POST", "/hooks/gh", "application/json", ghBody, map[string]string{"X-Hub-Signature-256": "sha256=" + hex.EncodeToString(mac.Sum(nil))}); code != 200 {
		t.Fatalf("github = %d %s", code, body)
	}
	sameText(t, r.h)
	key, _ := base64.StdEncoding.DecodeString("c2VjcmV0LWtleS1ieXRlcw==")
	stdBody, ts := `{"depth": 12}`, time.Now().Unix()
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "msg_1.%d.%s", ts, stdBody)
	if code, body := r.do("POST", "/hooks/std", "application/json", stdBody, map[string]string{"webhook-id": "msg_1", "webhook-timestamp": strconv.FormatInt(ts, 10), "webhook-signature": "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))}); code != 200 {
		t.Fatalf("standard webhook = %d %s", code, body)
	}
	if s := sameText(t, r.h); !strings.Contains(s, "queue 12\n") || !strings.Contains(s, `jobs_total{project="o/r"} 1`) || !strings.Contains(s, `ci_job_retries_total{project="gitlab-org/gitlab-test",stage="test"} 2`) {
		t.Fatalf("webhook changes missing:\n%s", s)
	}

	// Deletes: one series, then a whole metric.
	if code, _ := r.do("DELETE", "/api/jobs_total", "application/x-www-form-urlencoded", "labels=p0", auth); code != 204 {
		t.Fatalf("delete series = %d", code)
	}
	if s := sameText(t, r.h); strings.Contains(s, `jobs_total{project="p0"}`) {
		t.Fatalf("deleted series still served:\n%s", s)
	}
	if code, _ := r.do("DELETE", "/api/deployment_duration_seconds", "", "", auth); code != 204 {
		t.Fatalf("delete metric = %d", code)
	}
	if s := sameText(t, r.h); strings.Contains(s, "deployment_duration_seconds") {
		t.Fatalf("reset metric still served:\n%s", s)
	}

	// ttl: the pushed series goes, the pre-created one goes back to 0.
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return !strings.Contains(sameText(t, r.h), `short{k="gone"}`)
	}, "series never expired")
	if s := sameText(t, r.h); !strings.Contains(s, `short{k="kept"} 0`) {
		t.Fatalf("pre-created series not back to 0:\n%s", s)
	}

	// A reload that changes a help.
	if err := r.h.Update(strings.Replace(textConfig, `type   = "counter"
    labels = ["project"]`, `type   = "counter"
    help   = "Jobs, with a \\ and a new\nline."
    labels = ["project"]`, 1)); err != nil {
		t.Fatal(err)
	}
	if s := sameText(t, r.h); !strings.Contains(s, `# HELP jobs_total Jobs, with a \\ and a new\nline.`) {
		t.Fatalf("new help not served:\n%s", s)
	}
	before := sameText(t, r.h)
	if err := r.h.Stop(); err != nil {
		t.Fatal(err)
	}

	// Restored from the state on disk into a new receiver.
	r2 := newRigAt(t, textConfig, dir)
	after := sameText(t, r2.h)
	if !strings.Contains(after, `jobs_total{project="p1"} 1`) || !strings.Contains(after, "queue 12\n") {
		t.Fatalf("restored state missing series:\n%s", after)
	}
	if strings.Replace(before, `Jobs, with a \\ and a new\nline.`, "Pushed to webhook_receiver.", 1) != after {
		t.Fatalf("restored text differs:\n--- before\n%s--- after\n%s", before, after)
	}
}

// newRigAt is newRig with its state in dir.
func newRigAt(t *testing.T, body, dir string) *rig {
	t.Helper()
	return newRigOpts(t, body, pipelinetest.WithDataPath(dir))
}
