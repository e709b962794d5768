package pipeline_test

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline"
)

// Issue 19 item 16: an unset timeout is the component's default, but never
// longer than the interval (Prometheus's scrape_timeout rule).
func TestDefaultTimeout(t *testing.T) {
	for _, c := range []struct{ interval, fallback, want time.Duration }{
		{time.Second, 10 * time.Second, time.Second},
		{100 * time.Millisecond, 10 * time.Second, 100 * time.Millisecond},
		{10 * time.Second, 10 * time.Second, 10 * time.Second},
		{time.Minute, 10 * time.Second, 10 * time.Second},
		{0, 10 * time.Second, 10 * time.Second}, // no interval (not validated yet): the default
	} {
		if got := pipeline.DefaultTimeout(c.interval, c.fallback); got != c.want {
			t.Errorf("DefaultTimeout(%v, %v) = %v, want %v", c.interval, c.fallback, got, c.want)
		}
	}
}

// A timeout the user set is kept as set, longer than the interval or not
// (whether that is allowed is the component's to say).
func TestScheduleTimeout(t *testing.T) {
	if got := pipeline.ScheduleTimeout(3*time.Second, time.Second, 10*time.Second); got != 3*time.Second {
		t.Errorf("a set timeout = %v, want 3s", got)
	}
	if got := pipeline.ScheduleTimeout(0, time.Second, 10*time.Second); got != time.Second {
		t.Errorf("an unset timeout = %v, want the interval, 1s", got)
	}
}
