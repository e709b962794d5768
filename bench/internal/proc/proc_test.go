package proc

import (
	"os"
	"testing"
)

// The bench programs' memory figures come from here: the reading must find
// all three fields of a live process, and they must add up.
func TestReadMemorySelf(t *testing.T) {
	m, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.Anon <= 0 || m.File <= 0 {
		t.Fatalf("%+v: every part of a running test's RSS is above zero", m)
	}
	if d := m.RSS - m.Anon - m.File; d < 0 {
		t.Fatalf("%+v: RSS below anonymous + file-backed", m)
	}
	if _, err := ReadMemory(-1); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}
