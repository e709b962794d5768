package main

import (
	"os"
	"testing"
)

// builtDir is the directory buildOnce built the agent into, if it did:
// removed when the package's tests end, so that runs do not leave a binary
// of 50-100 MB in the temporary directory each.
var builtDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}
