// Package scrapelimit bounds how many scrapes a metrics handler serves at
// once. Each scrape of a large target costs CPU and encoding buffers; past
// a handful of concurrent scrapes, more only make every one of them slower
// (and likelier to hit the scraper's timeout), so the excess is turned away
// at once with 503 and a Retry-After instead of queueing.
//
// It does what promhttp's HandlerOpts.MaxRequestsInFlight does, plus what
// that option lacks: the limit can change while serving (a reload), the
// answer carries Retry-After, and rejections can be counted.
package scrapelimit

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
)

// RetryAfter is the Retry-After of a rejected scrape, in seconds. The
// excess is a burst of overlapping scrapes; one second lets it drain
// without telling a well-behaved client to stay away for long.
const RetryAfter = 1

// Handler serves through next at most limit() scrapes at a time; the
// others get 503 with Retry-After and call rejected (if not nil). limit is
// read for every scrape, so a new limit applies to the next one; a limit
// below 1 lets nothing through.
func Handler(next http.Handler, limit func() int, rejected func()) http.Handler {
	var inFlight atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		max := int64(limit())
		if inFlight.Add(1) > max {
			inFlight.Add(-1)
			if rejected != nil {
				rejected()
			}
			w.Header().Set("Retry-After", strconv.Itoa(RetryAfter))
			http.Error(w, fmt.Sprintf("Limit of concurrent scrapes reached (%d), try again later.", max), http.StatusServiceUnavailable)
			return
		}
		defer inFlight.Add(-1)
		next.ServeHTTP(w, r)
	})
}
