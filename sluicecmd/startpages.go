package sluicecmd

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// The executable's code and read-only data are mapped from its file, and a
// page is resident in the process from the first time it is touched (the
// kernel maps the 64 KiB around each fault from the page cache). Starting
// touches almost all of it: every package's initialisation, the config's
// parse and evaluation, each component's set-up. An idle agent runs a small
// part again (a scrape, a collection, a datagram), so the rest is resident
// for nothing: 11-12 MiB of sluice-lite's 14 MiB of file-backed RSS, 30 of
// the full binary's 33 (issue 22). Once the agent is ready, those mappings
// are dropped (madvise MADV_DONTNEED): the pages stay in the page cache,
// shared and reclaimable, and what the agent still runs comes back at its
// first fault, a minor one. Only read-only private mappings of the
// executable are dropped, and none holding a page of its own (a debugger's
// breakpoint or a uprobe writes a private copy; dropping it would lose
// it): their content is the file's, so nothing is lost.

// readOnlyExecutableMappings returns the address ranges of the mappings
// that releaseExecutablePages may drop, from the contents of
// /proc/self/smaps: the executable's (exe, the path in /proc/self/exe)
// read-only private mappings without anonymous pages.
func readOnlyExecutableMappings(smaps []byte, exe string) ([][2]uintptr, error) {
	var out [][2]uintptr
	var cur *[2]uintptr // the current mapping, if it is a candidate
	keep := func() {
		if cur != nil {
			out = append(out, *cur)
			cur = nil
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if strings.HasSuffix(f[0], ":") { // a field of the current mapping
			if f[0] == "Anonymous:" && cur != nil && (len(f) < 2 || f[1] != "0") {
				cur = nil // it holds pages of its own
			}
			continue
		}
		// A mapping's header: start-end perms offset dev inode [path].
		keep()
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok || len(f) < 6 || strings.Join(f[5:], " ") != exe || len(f[1]) != 4 || f[1][1] == 'w' || f[1][3] != 'p' {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("a mapping in /proc/self/smaps: %q", line)
		}
		cur = &[2]uintptr{uintptr(start), uintptr(end)}
	}
	keep()
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading /proc/self/smaps: %w", err)
	}
	return out, nil
}
