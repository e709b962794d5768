// Package realpart is how a test that starts a real part (PostgreSQL,
// kube-apiserver, Prometheus, chromium, gunicorn) steps aside: under
// go test -short, the fast lane, it skips; when the part is not installed
// it skips locally and fails under CI=true.
package realpart

import (
	"errors"
	"os"
	"testing"
)

// SkipShort skips the test under -short; part says what it would start
// ("a real PostgreSQL server").
func SkipShort(t testing.TB, part string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: this test needs " + part)
	}
}

// Check skips the test when err is notInstalled outside CI, and fails it
// for any other error, or for a missing part under CI=true.
func Check(t testing.TB, err, notInstalled error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, notInstalled) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	t.Fatal(err)
}
