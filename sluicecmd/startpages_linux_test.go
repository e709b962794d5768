package sluicecmd

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// executableRss is the resident size (kB) of the test binary's read-only
// mappings.
func executableRss(t *testing.T) int {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	total, in := 0, false
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") {
			in = len(f) >= 6 && f[5] == exe && !strings.Contains(f[1], "w")
			continue
		}
		if in && f[0] == "Rss:" {
			n, _ := strconv.Atoi(f[1])
			total += n
		}
	}
	return total
}

// Through this process: dropping the executable's pages takes most of
// them out of its RSS, and the code keeps running (it is mapped again
// from the page cache as it runs).
func TestReleaseExecutablePages(t *testing.T) {
	before := executableRss(t)
	n, err := releaseExecutablePages()
	if err != nil {
		t.Fatal(err)
	}
	after := executableRss(t)
	if n == 0 || before == 0 {
		t.Fatalf("dropped %d bytes of mappings; %d kB resident before: found no executable mapping", n, before)
	}
	t.Logf("the executable's resident pages: %d kB before, %d kB after the drop", before, after)
	if after >= before/2 {
		t.Errorf("the executable's resident pages: %d kB before, %d kB after the drop, want less than half", before, after)
	}
	// The code still runs, parsing and all.
	got, err := readOnlyExecutableMappings([]byte("00400000-00401000 r-xp 00000000 fe:00 1 /x\nAnonymous: 0 kB\n"), "/x")
	if err != nil || len(got) != 1 {
		t.Errorf("after the drop: %v, %v", got, err)
	}
}
