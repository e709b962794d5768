package webhook

import (
	"strconv"
	"testing"
)

func TestDedupBounded(t *testing.T) {
	d := newDedup(3)
	for i := 0; i < 3; i++ {
		if !d.claim(strconv.Itoa(i)) {
			t.Fatalf("%d: new key refused", i)
		}
	}
	if d.claim("1") {
		t.Error("duplicate accepted")
	}
	d.claim("3") // evicts "0"
	if !d.claim("0") {
		t.Error("evicted key still remembered")
	}
	if len(d.seen) > 3 {
		t.Errorf("remembers %d keys, bound 3", len(d.seen))
	}
	d.release("0")
	if !d.claim("0") {
		t.Error("released key still remembered")
	}
	d.mu.Lock()
	d.n = 1
	d.mu.Unlock()
	d.claim("x")
	if len(d.seen) > 1 {
		t.Errorf("after shrinking to 1, remembers %d keys", len(d.seen))
	}
	d.mu.Lock()
	d.n = 0
	d.mu.Unlock()
	if !d.claim("x") || !d.claim("x") {
		t.Error("dedup_keys = 0 must not drop anything")
	}
}
