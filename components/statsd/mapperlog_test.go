package statsd

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The quickstart's mapping starts without a warning: upstream's
// "backtracking required" messages (one per prefixed gunicorn rule) are
// logged at Debug, not lost. A rule that can never match is still a
// warning.
func TestGunicornMappingLoadsWithoutWarnings(t *testing.T) {
	rec := &recorder{}
	src, err := os.ReadFile(filepath.Join(examplesDir, "gunicorn-mapping.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newMapper(string(src), slog.New(rec)); err != nil {
		t.Fatal(err)
	}
	if n := rec.warnings(); n != 0 {
		t.Errorf("%d warnings loading the example mapping: %v", n, rec.records)
	}
	debug := 0
	for _, r := range rec.records {
		if r.Level == slog.LevelDebug && strings.HasPrefix(r.Message, backtrackingMessage) {
			debug++
		}
	}
	if debug != 4 {
		t.Errorf("%d backtracking messages at debug, want 4 (one per prefixed rule of length 3 or 4)", debug)
	}

	rec = &recorder{}
	if _, err := newMapper("mappings:\n- match: \"a.*\"\n  name: a_any\n- match: \"a.b\"\n  name: a_b\n", slog.New(rec)); err != nil {
		t.Fatal(err)
	}
	if rec.warnings() == 0 {
		t.Error("a rule shadowed by an earlier one was not warned about")
	}
}

// A logger that only wants warnings gets no backtracking message at all.
func TestMapperLoggerDropsBacktrackingAboveDebug(t *testing.T) {
	var b strings.Builder
	l := mapperLogger(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelWarn})))
	l.Warn("backtracking required because of match. Performance may be degraded", "match", "*.x")
	l.With("k", "v").Warn("another warning")
	if s := b.String(); strings.Contains(s, "backtracking") || !strings.Contains(s, "another warning") || !strings.Contains(s, "k=v") {
		t.Errorf("logged:\n%s", s)
	}
}
