package sluicecmd

import (
	"fmt"
	"os"
	"syscall"
)

// releaseExecutablePages drops the process's mappings of the executable's
// read-only pages (see startpages.go) and returns how many bytes of
// mappings it dropped.
func releaseExecutablePages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("finding the executable: %w", err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("reading the process's mappings: %w", err)
	}
	ranges, err := readOnlyExecutableMappings(smaps, exe)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range ranges {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, r[0], r[1]-r[0], syscall.MADV_DONTNEED); errno != 0 {
			return n, fmt.Errorf("madvise(MADV_DONTNEED) on %#x-%#x of the executable: %w", r[0], r[1], errno)
		}
		n += int64(r[1] - r[0])
	}
	return n, nil
}
