package pipeline_test

import (
	"testing"

	"github.com/sluicehq/sluice/pipeline"
)

// SecretRedactor removes known values wherever they are, the longest first,
// and a trailing part of one cut at a bound; values too short to protect
// are left alone.
func TestSecretRedactor(t *testing.T) {
	r := pipeline.NewSecretRedactor("hunter2", "hunter2-long", "ab", "")
	for in, want := range map[string]string{
		"pw=hunter2 and hunter2-long.": "pw=<redacted> and <redacted>.",
		"ab stays":                     "ab stays",
		"nothing":                      "nothing",
	} {
		if got := r.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"token: hunt":       "token: <redacted>",
		"token: hunter2-lo": "token: <redacted>",
		"token: hunter2":    "token: <redacted>",
		"token: x":          "token: x",
	} {
		if got := r.RedactCut(in); got != want {
			t.Errorf("RedactCut(%q) = %q, want %q", in, got, want)
		}
	}
	var zero pipeline.SecretRedactor
	if got := zero.RedactCut("hunter2"); got != "hunter2" {
		t.Errorf("the zero value redacted: %q", got)
	}
}
