package pipeline_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline"
)

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		name          string
		metric, label bool
	}{
		{"http_requests_total", true, true},
		{"_x", true, true},
		{"job:rate5m", true, false}, // ':' in metric names only (recording rules)
		{"A9", true, true},
		{"9a", false, false},
		{"", false, false},
		{"__name__", true, false}, // reserved label
		{"__x", true, false},
		{"_", true, true},
		{"a.b", false, false}, // UTF-8 names (Prometheus 3) are not accepted
		{"a-b", false, false},
		{"ä", false, false},
		{"a b", false, false},
	} {
		if got := pipeline.ValidMetricName(tc.name); got != tc.metric {
			t.Errorf("ValidMetricName(%q) = %v, want %v", tc.name, got, tc.metric)
		}
		if got := pipeline.ValidLabelName(tc.name); got != tc.label {
			t.Errorf("ValidLabelName(%q) = %v, want %v", tc.name, got, tc.label)
		}
	}
}

// Components and plugins check names with ValidMetricName and
// ValidLabelName only: no regex of their own for metric or label names,
// and no direct use of a Prometheus validation scheme's checks.
func TestNoOtherNameChecks(t *testing.T) {
	forbidden := regexp.MustCompile(`\[a-zA-Z_:?\]\[a-zA-Z0-9_:?\]\*\$|(Legacy|UTF8)Validation\.IsValid(Metric|Label)Name|func valid(Label|Metric)?Name\(`)
	n := 0
	for _, root := range []string{"../components", "../plugins"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			n++
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for i, line := range strings.Split(string(src), "\n") {
				if forbidden.MatchString(line) {
					t.Errorf("%s:%d checks names by itself; use pipeline.ValidMetricName or ValidLabelName: %s", path, i+1, strings.TrimSpace(line))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n < 50 {
		t.Fatalf("scanned %d Go files under components/ and plugins/: the walk found too few", n)
	}
}
