package pipelinetest

import (
	"runtime"
	"time"
)

// Measure returns the bytes f allocated and the time it took, for fuzz
// targets that bound what an input may cost. The allocation is the
// process's during f: run nothing else meanwhile.
func Measure(f func()) (allocated uint64, took time.Duration) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	f()
	took = time.Since(start)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, took
}
