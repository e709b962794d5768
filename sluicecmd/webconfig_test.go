package sluicecmd

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

func TestWebConfigCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.yml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("http_server_config:\n  http2: false\n")
	logs := &pipelinetest.Buffer{}
	c := newWebConfigCheck(path, slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
	if err := c.check("start"); err != nil || testutil.ToFloat64(c.ok) != 1 {
		t.Fatalf("valid file: %v, gauge %v", err, testutil.ToFloat64(c.ok))
	}
	write("http_server_config:\n  headers:\n    X-Bogus: 1\n")
	if err := c.check("sighup"); err == nil || testutil.ToFloat64(c.ok) != 0 || !strings.Contains(logs.String(), "web config file is invalid") || !strings.Contains(logs.String(), "X-Bogus") {
		t.Fatalf("broken file: %v, gauge %v, logs:\n%s", err, testutil.ToFloat64(c.ok), logs)
	}
	write("")
	if err := c.check("file"); err != nil || testutil.ToFloat64(c.ok) != 1 || !strings.Contains(logs.String(), "valid again") {
		t.Fatalf("fixed file: %v, gauge %v, logs:\n%s", err, testutil.ToFloat64(c.ok), logs)
	}
	if got := c.files(); len(got) != 1 || got[0] != path {
		t.Fatalf("watched files %v", got)
	}
	none := newWebConfigCheck("", slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err := none.check("start"); err != nil || testutil.ToFloat64(none.ok) != 1 || none.files() != nil {
		t.Fatal("no web config file: valid, nothing to watch")
	}
}
