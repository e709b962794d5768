package pipeline_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The contract is what every plugin imports, so it must not bring the
// runtime's dependencies with it: no file watcher, no web-config server,
// no systemd socket activation, no Kubernetes client, no PostgreSQL
// driver, no browser. TestContractDependencies fails when `go list -deps`
// of the contract names any of them, or any module outside the short list
// the contract is allowed (the standard library, client_golang and what it
// needs, prometheus/common, hcl and cty).
func TestContractDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/sluicehq/sluice/pipeline").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps listed nothing: not even the contract itself")
	}
	forbidden := []string{
		"github.com/fsnotify/",
		"github.com/prometheus/exporter-toolkit/",
		"github.com/coreos/go-systemd/",
		"k8s.io/client-go/",
		"github.com/jackc/pgx/",
		"github.com/chromedp/",
		"github.com/golang-jwt/",
		"github.com/mdlayher/vsock",
		"github.com/sluicehq/sluice/runtime",
		"github.com/sluicehq/sluice/components/",
	}
	allowed := []string{
		"github.com/sluicehq/sluice/pipeline",
		"github.com/sluicehq/sluice/internal/schema",
		"github.com/prometheus/client_golang/",
		"github.com/prometheus/client_model/",
		"github.com/prometheus/common/",
		"github.com/prometheus/procfs",
		"github.com/beorn7/perks/",
		"github.com/cespare/xxhash/",
		"github.com/munnerz/goautoneg",
		"google.golang.org/protobuf/",
		"golang.org/x/sys/",
		"golang.org/x/text/",
		"github.com/hashicorp/hcl/v2",
		"github.com/zclconf/go-cty/",
		"github.com/apparentlymart/go-textseg/",
		"github.com/mitchellh/go-wordwrap",
		"github.com/agext/levenshtein",
	}
	sawSelf := false
	for _, d := range deps {
		if d == "github.com/sluicehq/sluice/pipeline" {
			sawSelf = true
		}
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("the contract depends on %s (forbidden: %s)", d, f)
			}
		}
		ok := false
		for _, a := range allowed {
			if strings.HasPrefix(d, a) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("the contract depends on %s, which is not on its allowed list", d)
		}
	}
	if !sawSelf {
		t.Errorf("go list -deps did not list the contract itself: %v", deps)
	}
}
