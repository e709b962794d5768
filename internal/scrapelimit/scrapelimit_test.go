package scrapelimit_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/internal/scrapelimit"
)

// blocking serves 200 once release is closed, and counts who is inside.
type blocking struct {
	inside  atomic.Int64
	entered chan struct{}
	release chan struct{}
}

func (b *blocking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.inside.Add(1)
	defer b.inside.Add(-1)
	b.entered <- struct{}{}
	<-b.release
}

func TestLimitRetryAfterAndChange(t *testing.T) {
	next := &blocking{entered: make(chan struct{}, 10), release: make(chan struct{})}
	var limit atomic.Int64
	limit.Store(2)
	var rejected atomic.Int64
	h := scrapelimit.Handler(next, func() int { return int(limit.Load()) }, func() { rejected.Add(1) })

	serve := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return w
	}
	var wg sync.WaitGroup
	codes := make(chan int, 3)
	start := func() {
		wg.Add(1)
		go func() { defer wg.Done(); codes <- serve().Code }()
		<-next.entered // admitted and inside next
	}
	start()
	start()
	w := serve()
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || rejected.Load() != 1 {
		t.Fatalf("third of limit 2: status %d, Retry-After %q, rejected %d; want 503, \"1\", 1",
			w.Code, w.Header().Get("Retry-After"), rejected.Load())
	}
	// A raised limit applies to the next request.
	limit.Store(3)
	start()
	if got := next.inside.Load(); got != 3 {
		t.Fatalf("%d inside after raising the limit to 3, want 3", got)
	}
	close(next.release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("admitted request: status %d", c)
		}
	}
	if w := serve(); w.Code != http.StatusOK {
		t.Errorf("after the others finished: status %d", w.Code)
	}
	if rejected.Load() != 1 {
		t.Errorf("rejected = %d, want 1", rejected.Load())
	}
}
