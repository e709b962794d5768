package webhook

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func newPool() *sync.Pool {
	return &sync.Pool{New: func() any { return new([chunkSize]byte) }}
}

// A body is read whole within the budget, in chunks that are given back;
// one that would take the budget over its bound is refused with 503 and
// holds nothing afterwards; concurrent readers never exceed the bound.
func TestReadUnverifiedBudget(t *testing.T) {
	var b budget
	pool := newPool()
	body := strings.Repeat("x", 3*chunkSize+17)
	r := httptest.NewRequest("POST", "/hooks/h", strings.NewReader(body))
	c, reserved, err := readUnverified(httptest.NewRecorder(), r, 1<<20, 1<<20, &b, pool)
	if err != nil || !bytes.Equal(c.bytes(), []byte(body)) || reserved != 4*chunkSize {
		t.Fatalf("read %d bytes, reserved %d, err %v", len(c.bytes()), reserved, err)
	}
	c.release()
	b.give(reserved)

	r = httptest.NewRequest("POST", "/hooks/h", strings.NewReader(body))
	c, reserved, err = readUnverified(httptest.NewRecorder(), r, 1<<20, 2*chunkSize, &b, pool)
	var he *httpError
	if !errors.As(err, &he) || he.code != http.StatusServiceUnavailable {
		t.Fatalf("over the bound: %v, want 503", err)
	}
	if reserved != 2*chunkSize {
		t.Errorf("reserved %d when refused, want the bound", reserved)
	}
	c.release()
	b.give(reserved)
	if n := b.used.Load(); n != 0 {
		t.Errorf("%d bytes still reserved", n)
	}

	// Many at once: the reservations never pass the bound.
	const bound = 5 * chunkSize
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest("POST", "/hooks/h", strings.NewReader(body))
			c, reserved, err := readUnverified(httptest.NewRecorder(), r, 1<<20, bound, &b, pool)
			if n := b.used.Load(); n > bound {
				t.Errorf("%d bytes reserved, bound %d", n, bound)
			}
			if err != nil {
				mu.Lock()
				refused++
				mu.Unlock()
			}
			c.release()
			b.give(reserved)
		}()
	}
	wg.Wait()
	if n := b.used.Load(); n != 0 {
		t.Errorf("%d bytes still reserved after all", n)
	}
	t.Logf("%d of 20 concurrent reads refused", refused)
}

// Over max_body: 413, whether announced or not.
func TestReadUnverifiedLimit(t *testing.T) {
	var b budget
	for _, announce := range []bool{true, false} {
		r := httptest.NewRequest("POST", "/hooks/h", strings.NewReader(strings.Repeat("x", 1000)))
		if !announce {
			r.ContentLength = -1
		}
		c, reserved, err := readUnverified(httptest.NewRecorder(), r, 999, 1<<20, &b, newPool())
		c.release()
		b.give(reserved)
		var he *httpError
		if !errors.As(err, &he) || he.code != http.StatusRequestEntityTooLarge {
			t.Errorf("announced=%v: %v, want 413", announce, err)
		}
	}
}

// What can be checked without the body is checked before it is read.
func TestPrecheckHook(t *testing.T) {
	now := nowFunc()
	gen := &hookDef{kind: "generic", secret: []byte("k"), tolerance: DefaultTolerance}
	gh := &hookDef{kind: "github", secret: []byte("k")}
	gl := &hookDef{kind: "gitlab", secret: func() []byte { s := hashToken("tok"); return s[:] }()}
	req := func(h map[string]string) *http.Request {
		r := httptest.NewRequest("POST", "/hooks/h", nil)
		for k, v := range h {
			r.Header.Set(k, v)
		}
		return r
	}
	ts := func(d int64) string { return strconv.FormatInt(now.Unix()+d, 10) }
	for _, c := range []struct {
		name string
		h    *hookDef
		hdr  map[string]string
		ok   bool
	}{
		{"gitlab right token", gl, map[string]string{"X-Gitlab-Token": "tok"}, true},
		{"gitlab wrong token", gl, map[string]string{"X-Gitlab-Token": "nope"}, false},
		{"github well-formed", gh, map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("ab", 32)}, true},
		{"github short", gh, map[string]string{"X-Hub-Signature-256": "sha256=abcd"}, false},
		{"github missing", gh, nil, false},
		{"generic fresh", gen, map[string]string{"webhook-id": "m", "webhook-timestamp": ts(0), "webhook-signature": "v1,AAAA"}, true},
		{"generic stale", gen, map[string]string{"webhook-id": "m", "webhook-timestamp": ts(-3600), "webhook-signature": "v1,AAAA"}, false},
		{"generic no v1", gen, map[string]string{"webhook-id": "m", "webhook-timestamp": ts(0), "webhook-signature": "v2,AAAA"}, false},
	} {
		if ok, why := precheckHook(c.h, req(c.hdr), now); ok != c.ok {
			t.Errorf("%s: %v (%s), want %v", c.name, ok, why, c.ok)
		}
	}
}
