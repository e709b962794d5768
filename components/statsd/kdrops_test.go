package statsd

import (
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// A burst into a tiny socket buffer while the readers are stalled makes
// the kernel drop datagrams; sluice_statsd_udp_kernel_drops_total counts
// every one of them: what was processed plus what was reported dropped is
// what was sent. After a reload that moves the socket, the count keeps
// what the old socket dropped.
func TestKernelDropsAreCounted(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("kernel drops are read from /proc/net/udp")
	}
	h := pipelinetest.New(t, "statsd_receiver", udp+"read_buffer = 4096\n")
	r := h.Component.(*Receiver)
	release := make(chan struct{})
	var once, releaseOnce sync.Once
	unstall := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unstall) // before the harness stops the receiver
	stalled := make(chan struct{})
	r.hooks.line = func(string) {
		once.Do(func() { close(stalled) })
		<-release
	}
	h.Start()
	pipelinetest.Eventually(t, waitFor, r.running0, "receiver did not start")
	if v := value(t, h.Registry, "sluice_statsd_udp_kernel_drops_total", nil); v != 0 {
		t.Fatalf("kernel drops before any traffic = %v", v)
	}
	c, err := net.Dial("udp", r.addr(t, "udp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("kd.first:1|c")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stalled:
	case <-time.After(waitFor):
		t.Fatal("the reader did not reach the stalled line")
	}
	const burst = 2000
	for range burst {
		if _, err := c.Write([]byte("kd.burst:1|c")); err != nil {
			t.Fatal(err)
		}
	}
	// The drops are visible while the readers are still stalled.
	pipelinetest.Eventually(t, waitFor, func() bool {
		return value(t, h.Registry, "sluice_statsd_udp_kernel_drops_total", nil) > 0
	}, "no kernel drops counted")
	unstall()
	const sent = burst + 1
	var processed, dropped float64
	pipelinetest.Eventually(t, waitFor, func() bool {
		processed = value(t, h.Registry, "statsd_exporter_events_total", map[string]string{"type": "counter"})
		dropped = value(t, h.Registry, "sluice_statsd_udp_kernel_drops_total", nil)
		return processed+dropped == sent
	}, "processed %v + kernel drops %v != sent %v", processed, dropped, sent)
	if dropped < burst/2 {
		t.Errorf("only %v of %d datagrams dropped with a 4 KiB buffer and the readers stalled", dropped, burst)
	}

	// Moving the socket keeps the old socket's drops in the count.
	if err := h.Update("listen_udp = \"127.0.0.1:0\"\nread_buffer = 8192\nlisten_tcp = \"127.0.0.1:0\"\n"); err != nil {
		t.Fatal(err)
	}
	if err := h.Update("listen_udp = \"127.0.0.2:0\"\nread_buffer = 8192\n"); err != nil {
		t.Fatal(err)
	}
	if v := value(t, h.Registry, "sluice_statsd_udp_kernel_drops_total", nil); v != dropped {
		t.Errorf("after moving the socket: %v kernel drops, want %v", v, dropped)
	}
}

func TestProcDropsBadTables(t *testing.T) {
	inodes := map[uint64]struct{}{452226: {}}
	good := "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n" +
		" 1709: 0100007F:C570 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 452226 2 00000000a875d202 17\n" +
		" 1710: 0100007F:C571 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 999 2 00000000a875d202 5\n"
	if got := procDrops([]byte(good), inodes); got != 17 {
		t.Errorf("good table: %v, want 17", got)
	}
	for name, table := range map[string]string{
		"empty":          "",
		"no header cols": "sl local_address\n 1: x y 452226 2 p 17\n",
		"short row":      "sl inode drops\n17\n",
		"bad numbers":    "sl inode ref pointer drops\n 1: 452226x 2 p 17\n 2: 452226 2 p -3\n",
		"binary":         "\x00\xff\n\x00",
	} {
		if got := procDrops([]byte(table), inodes); got != 0 {
			t.Errorf("%s: %v, want 0", name, got)
		}
	}
}

func FuzzProcDrops(f *testing.F) {
	f.Add([]byte("sl inode ref pointer drops\n 1: 452226 2 p 17\n"), uint64(452226))
	f.Add([]byte(""), uint64(0))
	f.Fuzz(func(t *testing.T, table []byte, ino uint64) {
		if got := procDrops(table, map[uint64]struct{}{ino: {}}); got < 0 {
			t.Fatalf("negative drops %v", got)
		}
	})
}
