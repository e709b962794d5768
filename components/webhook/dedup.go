package webhook

import "sync"

// dedup remembers the last n delivery IDs (FIFO), to drop a delivery seen
// before. An ID is claimed when a request starts and released if it fails,
// so a retry after a failure is not taken for a duplicate.
type dedup struct {
	mu   sync.Mutex
	n    int
	seen map[string]struct{}
	ring []string
	next int
}

func newDedup(n int) *dedup { return &dedup{n: n, seen: map[string]struct{}{}} }

// claim reports whether key is new, and remembers it.
func (d *dedup) claim(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == 0 {
		return true
	}
	if _, dup := d.seen[key]; dup {
		return false
	}
	if len(d.ring) > d.n { // shrunk by a reload: forget the oldest
		for _, k := range d.ring[d.n:] {
			delete(d.seen, k)
		}
		d.ring, d.next = d.ring[:d.n], 0
	}
	if len(d.ring) < d.n {
		d.ring = append(d.ring, key)
	} else {
		delete(d.seen, d.ring[d.next])
		d.ring[d.next] = key
		d.next = (d.next + 1) % d.n
	}
	d.seen[key] = struct{}{}
	return true
}

// release forgets key (its request failed). Its ring slot stays until
// reused; that only makes the ring forget a little earlier.
func (d *dedup) release(key string) {
	d.mu.Lock()
	delete(d.seen, key)
	d.mu.Unlock()
}
