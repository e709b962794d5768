// Package realpart is how a test that starts a real part (PostgreSQL,
// kube-apiserver, Prometheus, chromium, gunicorn) steps aside: under
// go test -short, the fast lane, it skips; when the part is not installed
// it skips locally and fails under CI=true. SkipShortSlow is the fast
// lane's other rule: an end-to-end test that is slow for what it proves
// (kill -9 and restart, a tmpfs filled up, a second binary built) skips
// under -short too; make test runs all of them.
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

// SkipShortSlow skips the test under -short; what says what makes it slow
// ("kills the agent with SIGKILL and restarts it").
func SkipShortSlow(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short (the fast lane) skips this test: it " + what + "; make test runs it")
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
