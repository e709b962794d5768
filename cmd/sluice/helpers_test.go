package main

import (
	"os"
	"path/filepath"
	"testing"
)

// writeTemp writes a file to a new temporary directory. (The CLI tests,
// which have their own copy, live in sluicecmd since the CLI became a
// package; the end-to-end tests of the binary stay here.)
func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
