package exec

import (
	"bytes"
	"strings"
	"testing"

	_ "github.com/sluicehq/sluice/components/sink" // metrics_sink, in the example
	"github.com/sluicehq/sluice/testfile"
)

// The example's test passes under sluice test: a run's output reaches the
// exposition (an exact expectation of one series), and a failed run or
// bad output keeps the last values.
func TestExampleUnderSluiceTest(t *testing.T) {
	var out bytes.Buffer
	if !testfile.RunFile("examples/exec.test.hcl", &out) || !strings.HasPrefix(out.String(), "ok    examples/exec.test.hcl  3 steps") {
		t.Fatalf("example test:\n%s", out.String())
	}
}
