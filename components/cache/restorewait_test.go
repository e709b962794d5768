//go:build unix

package cache

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A snapshot file that cannot be read (here a FIFO without a writer: the
// open blocks, as on a hung disk) delays a scrape by restoreWait at most:
// the scrape is served what is in memory and counted.
func TestScrapeWaitsForRestoreBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, fileName)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	i := build(t, persistBody, dir, newInput(), nil)
	fams, err := i.c.Gather()
	if err != nil || len(fams) != 0 {
		t.Fatalf("Gather during a hung restore = %v, %v; want nothing, no error", fams, err)
	}
	if got := metric(t, i.reg, "sluice_cache_restore_wait_timeouts_total"); got != 1 {
		t.Errorf("restore wait timeouts = %v, want 1", got)
	}
	// Unblock the restore: it reads an empty "file", reports it, and ends.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	<-i.c.restored
	if got := metric(t, i.reg, "sluice_cache_persist_errors_total", "op", "restore"); got != 1 {
		t.Errorf("restore errors = %v, want 1 (an empty file)", got)
	}
}
