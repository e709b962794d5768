package sluicecmd

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
)

// defaultGOGC is the garbage collector's target the agent runs with
// unless told otherwise (Go's own default is 100). The statsd hot path
// allocates next to nothing, so what grows the heap between collections is
// mostly scrapes; with 100 the heap of a large receiver settles at twice
// its live size under a scrape loop, which is what a DaemonSet's memory
// limit meets. 50 keeps it at 1.5x for a collection every few scrapes
// (tens of milliseconds of CPU each 15 s for 100k series). Prometheus
// made the same trade (GOGC 75 by default, runtime.gogc).
const defaultGOGC = 50

// applyGOGC sets the garbage collector's target percentage from the
// --runtime.gogc flag, unless the GOGC environment variable is set, which
// wins (as Go users expect). It returns the percentage in effect and
// where it came from.
func applyGOGC(flag int, logger *slog.Logger) (int, string, error) {
	if env := os.Getenv("GOGC"); env != "" {
		if env == "off" {
			return -1, "GOGC environment variable", nil
		}
		if n, err := strconv.Atoi(env); err == nil {
			logger.Debug("GOGC from the environment, --runtime.gogc ignored", "gogc", n)
			return n, "GOGC environment variable", nil
		}
		// Go ignores a GOGC it cannot parse: so does the flag.
	}
	if flag <= 0 {
		return 0, "", fmt.Errorf("--runtime.gogc=%d: must be a positive percentage (use GOGC=off to turn the collector off)", flag)
	}
	debug.SetGCPercent(flag)
	return flag, "--runtime.gogc", nil
}
