package sluicecmd

import (
	"fmt"
	"io"
	"strings"

	"github.com/sluicehq/sluice/testfile"
)

// runTests is `sluice test FILE...`: every file runs (a failure does not
// hide the next file's result); exit 1 if any failed.
func runTests(files []string, stdout, stderr io.Writer) int {
	failed := 0
	for _, f := range files {
		if !strings.HasSuffix(f, ".test.hcl") {
			fmt.Fprintf(stderr, "FAIL  %s  not a test file: test files are named *.test.hcl\n", f)
			failed++
			continue
		}
		if !testfile.RunFile(f, stdout) {
			failed++
		}
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "sluice test: %d of %d test files failed\n", failed, len(files))
		return 1
	}
	return 0
}
