// Package examples holds runnable example pipelines; this test validates
// every one of them with the real loader and every built-in component.
package examples

import (
	"os"
	"path/filepath"
	"testing"

	_ "github.com/sluicehq/sluice/components/all"
	"github.com/sluicehq/sluice/runtime"
)

// exampleSecrets are the environment variables an example requires.
var exampleSecrets = map[string]map[string]string{
	"delivery-metrics.hcl": {"PUSH_TOKEN": "t0ken", "GITLAB_WEBHOOK_TOKEN": "gl-secret"},
}

func TestExamplesValidate(t *testing.T) {
	files, err := filepath.Glob("*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// An empty environment: examples must run with their defaults,
			// except the secrets an example reads with env() on purpose
			// (an empty token is refused, so they have no default).
			noEnv := func(name string) (string, bool) {
				v, ok := exampleSecrets[f][name]
				return v, ok
			}
			if err := runtime.Validate(f, src, noEnv); err != nil {
				t.Fatalf("%s does not validate:\n%v", f, err)
			}
		})
	}
}
