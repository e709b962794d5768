package httpjson

import (
	"bytes"
	"strings"
	"testing"

	_ "github.com/sluicehq/sluice/components/sink" // metrics_sink, in the example
	"github.com/sluicehq/sluice/testfile"
)

// The example's test passes under sluice test: a response body becomes the
// series the metric blocks describe, and an error response keeps them.
func TestExampleUnderSluiceTest(t *testing.T) {
	var out bytes.Buffer
	if !testfile.RunFile("examples/deliveries.test.hcl", &out) || !strings.HasPrefix(out.String(), "ok    examples/deliveries.test.hcl  2 steps") {
		t.Fatalf("example test:\n%s", out.String())
	}
}
