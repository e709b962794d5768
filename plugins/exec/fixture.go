package exec

import (
	"fmt"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/pipeline"
)

// The source under `sluice test` (pipeline/fixture.go): the command never
// runs; a test hands over what a run printed and how it exited, and the
// result is recorded as runOnce records a run's (a failed run keeps the
// last values).

var (
	_ pipeline.CommandOutputTaker = (*Component)(nil)
	_ pipeline.ClockFollower      = (*Component)(nil)
)

// TakeCommandOutput records a run that printed stdout and exited with
// exitCode. A failed run is not an error of the test: it is what the test
// may be about (the exposition keeps the last good values).
func (c *Component) TakeCommandOutput(stdout string, exitCode int) error {
	p := c.currentPlan()
	result, detail := resultSuccess, ""
	var fams []*dto.MetricFamily
	var series int
	switch {
	case int64(len(stdout)) > p.maxOut:
		result, detail = resultTooLarge, fmt.Sprintf("more than max_output_bytes (%d) on standard output; killed", p.maxOut)
	case exitCode != 0:
		result, detail = resultExitError, fmt.Sprintf("exit status %d", exitCode)
	default:
		var err error
		if fams, series, err = parse([]byte(stdout)); err != nil {
			result, detail = resultBadOutput, err.Error()
		}
	}
	c.self.exitCode.Set(float64(exitCode))
	c.record(p, result, detail, fams, series, 0)
	return nil
}

// AdvanceTo does nothing: under test the command runs only when a step
// gives its output, so nothing changes with the clock.
func (c *Component) AdvanceTo(time.Time) error { return nil }
