package ports

import "testing"

// Free hands out distinct addresses, which one-by-one picking does not
// promise.
func TestFreeDistinct(t *testing.T) {
	addrs, err := Free(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("%s handed out twice in %v", a, addrs)
		}
		seen[a] = true
	}
	if len(seen) != 20 {
		t.Fatalf("got %d addresses, want 20", len(seen))
	}
}
