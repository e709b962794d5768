package cache

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/faultfs"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// fileValue is orders{status="paid"} in the snapshot file (-1: no file or
// no such series; a file that does not decode fails the test).
func fileValue(t *testing.T, dir string) float64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, fileName))
	if errors.Is(err, os.ErrNotExist) {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeSnapshot(b)
	if err != nil {
		t.Fatalf("the snapshot file does not decode: %v", err)
	}
	for _, mf := range d.fams {
		if mf.GetName() == "orders" && len(mf.Metric) == 1 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	return -1
}

// Each create, write (whole and short), fsync, close, rename, directory
// sync and mkdir of the snapshot file fails with ENOSPC, EIO and EROFS:
// the previous file stays whole, the fault is reported (counted,
// persist_failing 1, unhealthy naming the error, logged), and the next
// refreshes write the file by themselves once the fault clears.
func TestPersistFaultAtEachOperation(t *testing.T) {
	ops := []faultfs.Op{faultfs.OpMkdir, faultfs.OpCreate, faultfs.OpWrite, faultfs.OpSync, faultfs.OpClose, faultfs.OpRename, faultfs.OpSyncDir}
	for _, errno := range faultfs.Errnos() {
		for _, op := range ops {
			for _, short := range []bool{false, true} {
				if short && op != faultfs.OpWrite {
					continue
				}
				name := string(op) + "/" + errno.Error()
				if short {
					name = "short" + name
				}
				t.Run(name, func(t *testing.T) {
					dir := t.TempDir()
					clk := newClock()
					in := newInput()
					g := in.gaugeVec("orders", "status").WithLabelValues("paid")
					g.Set(3)
					persisted(t, dir, in, clk, 1)

					fi := faultfs.NewInjector(faultfs.OS{})
					fi.Inject(faultfs.Fault{Op: op, Err: errno, Short: short})
					g.Set(5)
					log := &pipelinetest.Buffer{}
					i := build(t, persistBody, dir, in, clk.now)
					i.c.persist.fs = fi
					i.c.opts.Logger = slogTo(log)
					i.c.errLog = i.c.opts.Logger
					i.start()
					pipelinetest.Eventually(t, wait, func() bool {
						return metric(t, i.reg, "sluice_cache_persist_errors_total", "op", "write") >= 2
					}, "the write fault was not counted, or not retried")
					if fi.Hits(op) == 0 {
						t.Fatalf("the fault at %s was never hit", op)
					}
					if op != faultfs.OpSyncDir {
						// Before the rename: the previous file is untouched.
						// (A failed directory sync follows the rename: the new
						// file is there, not known durable, and is written
						// again.)
						if v := fileValue(t, dir); v != 3 {
							t.Errorf("the file holds %v during the fault, want the previous 3", v)
						}
					}
					if h := i.c.Health(); h.State != pipeline.HealthUnhealthy || !strings.Contains(h.Message, errno.Error()) {
						t.Errorf("health during the fault = %+v", h)
					}
					if v := metric(t, i.reg, "sluice_cache_persist_failing"); v != 1 {
						t.Errorf("persist_failing = %v during the fault", v)
					}
					if !strings.Contains(log.String(), "writing the snapshot file failed") {
						t.Errorf("the fault was not logged: %s", log.String())
					}
					if served(t, i.c)["orders,status=paid"] != 5 {
						t.Errorf("the cache stopped serving the refreshed value")
					}
					fi.Clear()
					pipelinetest.Eventually(t, wait, func() bool {
						return metric(t, i.reg, "sluice_cache_persist_failing") == 0 && fileValue(t, dir) == 5
					}, "the file was not written again after the fault cleared")
					if h := i.c.Health(); h.State != pipeline.HealthHealthy {
						t.Errorf("health after recovery = %+v", h)
					}
					i.stop()
					if m, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(m) != 0 {
						t.Errorf("temporary files left: %v", m)
					}
				})
			}
		}
	}
}
