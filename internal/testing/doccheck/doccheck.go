// Package doccheck keeps maps of a package's files, written in its package
// documentation, true to the files: a test of the package calls
// ReadingOrder, which fails when a file is missing from the map or the map
// names a file that is gone.
package doccheck

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// mapLine is a line of a reading-order map in a doc comment: a tab, a
// file name, then its description.
var mapLine = regexp.MustCompile(`^//\t([a-z0-9_]+\.go)\s`)

// ReadingOrder checks the reading-order map in the doc comment of file
// docFile in directory dir (lines "//\tname.go  what it holds") against
// the non-test Go files of dir (docFile itself may be left out).
func ReadingOrder(t testing.TB, dir, docFile string) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(dir, docFile))
	if err != nil {
		t.Fatal(err)
	}
	var mapped []string
	for line := range strings.SplitSeq(string(src), "\n") {
		if strings.HasPrefix(line, "package ") {
			break
		}
		if m := mapLine.FindStringSubmatch(line); m != nil {
			mapped = append(mapped, m[1])
		}
	}
	if len(mapped) == 0 {
		t.Fatalf("%s: no reading-order map (lines \"//\\tname.go  ...\") in the package doc", docFile)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var actual []string
	for _, f := range files {
		if b := filepath.Base(f); !strings.HasSuffix(b, "_test.go") {
			actual = append(actual, b)
		}
	}
	for _, f := range actual {
		if f != docFile && !slices.Contains(mapped, f) {
			t.Errorf("%s is not in the reading-order map of %s", f, docFile)
		}
	}
	for _, f := range mapped {
		if !slices.Contains(actual, f) {
			t.Errorf("the reading-order map of %s names %s, which is not a file of the package", docFile, f)
		}
	}
}
