package statsd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

func hitsMapping(labels string) string {
	return "mapping {\n  match = \"app.*.hits\"\n  name = \"hits_total\"\n  labels = { page = \"$1\"" + labels + " }\n}\n"
}

func TestReloadMappingInPlace(t *testing.T) {
	h, r := startReceiver(t, udp+hitsMapping(""))
	g := h.Gatherer()
	send(t, "udp", r.addr(t, "udp"), "app.home.hits:1|c\napp.home.hits:1|c")
	waitValue(t, g, "hits_total", map[string]string{"page": "home"}, 2)
	udpAddr := r.addr(t, "udp")

	if err := h.Update(udp + hitsMapping(`, version = "2"`) + "mapping {\n  match = \"app.*.misses\"\n  name = \"misses_total\"\n}\n"); err != nil {
		t.Fatal(err)
	}
	if got := r.addr(t, "udp"); got != udpAddr {
		t.Fatalf("UDP socket moved from %s to %s on a mapping change", udpAddr, got)
	}
	send(t, "udp", udpAddr, "app.home.hits:5|c\napp.x.misses:1|c")
	waitValue(t, g, "hits_total", map[string]string{"page": "home", "version": "2"}, 5)
	waitValue(t, g, "misses_total", nil, 1)
	// The series made under the old mapping survive.
	if v := value(t, g, "hits_total", map[string]string{"page": "home"}); v != 2 {
		t.Fatalf("old series = %v, want 2", v)
	}
	if v := value(t, h.Registry, "statsd_exporter_loaded_mappings", nil); v != 2 {
		t.Fatalf("loaded mappings = %v, want 2", v)
	}
	if v := value(t, h.Registry, "statsd_exporter_config_reloads_total", map[string]string{"outcome": "success"}); v != 1 {
		t.Fatalf("successful reloads = %v, want 1", v)
	}
}

func TestReloadInvalidMappingKeepsRunning(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "m.yml", "mappings:\n- match: app.*.hits\n  name: hits_total\n  labels: {page: \"$1\"}\n")
	body := udp + "mapping_file = \"m.yml\"\n"
	h, r := startReceiver(t, body, pipelinetest.WithConfigDir(dir))
	g := h.Gatherer()

	// The file goes bad: the update is refused, the running mapping stays.
	writeFile(t, dir, "m.yml", "mappings:\n- match: app.*.hits\n  name: \"bad name\"\n")
	if err := h.Update(body + "max_series = 7\n"); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("want an error naming %s, got %v", file, err)
	}
	send(t, "udp", r.addr(t, "udp"), "app.home.hits:1|c")
	waitValue(t, g, "hits_total", map[string]string{"page": "home"}, 1)
	if v := value(t, h.Registry, "sluice_statsd_max_series", nil); v != DefaultMaxSeries {
		t.Fatalf("max_series changed to %v by a rejected update", v)
	}
	// The bad file is caught when the arguments are decoded and validated
	// (a config diagnostic), before Update is called at all.
	if v := value(t, h.Registry, "statsd_exporter_config_reloads_total", map[string]string{"outcome": "failure"}); v != 0 {
		t.Fatalf("failed reloads = %v, want 0: the bad file should be refused before Update", v)
	}
	// An invalid inline block never gets as far as Update either: it is a
	// diagnostic at load time, beside the one about the file.
	err := h.Update(body + "mapping {\n  match = \"a..b\"\n  name = \"x\"\n}\n")
	var diags hcl.Diagnostics
	if !errors.As(err, &diags) || !strings.Contains(fmt.Sprint([]*hcl.Diagnostic(diags)), "invalid match") {
		t.Fatalf("want a load error about the block, got %v", err)
	}
}

func TestReloadListenAddress(t *testing.T) {
	h, r := startReceiver(t, udp+"listen_tcp = \"127.0.0.1:0\"\n")
	g := h.Gatherer()
	oldUDP, tcpAddr := r.addr(t, "udp"), r.addr(t, "tcp")

	// A TCP client connected before the reload.
	c, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("tcp.hits:1|c\n")); err != nil {
		t.Fatal(err)
	}
	waitValue(t, g, "tcp_hits", nil, 1)

	// Only the UDP address changes.
	if err := h.Update("listen_udp = \"127.0.0.2:0\"\nlisten_tcp = \"127.0.0.1:0\"\n"); err != nil {
		t.Fatal(err)
	}
	newUDP := r.addr(t, "udp")
	if !strings.HasPrefix(newUDP, "127.0.0.2:") {
		t.Fatalf("UDP is on %s, want 127.0.0.2", newUDP)
	}
	if got := r.addr(t, "tcp"); got != tcpAddr {
		t.Fatalf("unchanged TCP address was rebound: %s -> %s", tcpAddr, got)
	}
	// The old UDP socket is released...
	pc, err := net.ListenPacket("udp", oldUDP)
	if err != nil {
		t.Fatalf("old UDP address %s still bound: %v", oldUDP, err)
	}
	pc.Close()
	// ... the new one receives, and the TCP connection carried on.
	send(t, "udp", newUDP, "udp.hits:1|c")
	waitValue(t, g, "udp_hits", nil, 1)
	if _, err := c.Write([]byte("tcp.hits:1|c\n")); err != nil {
		t.Fatal(err)
	}
	waitValue(t, g, "tcp_hits", nil, 2)

	// A bind failure leaves everything as it was.
	blocker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	err = h.Update("listen_udp = \"127.0.0.2:0\"\nlisten_tcp = \"" + blocker.Addr().String() + "\"\nmax_series = 3\n")
	if err == nil {
		t.Fatal("binding a taken address succeeded")
	}
	if got := r.addr(t, "tcp"); got != tcpAddr {
		t.Fatalf("TCP moved to %s after a failed update", got)
	}
	if v := value(t, h.Registry, "sluice_statsd_max_series", nil); v != DefaultMaxSeries {
		t.Fatalf("max_series applied by a failed update: %v", v)
	}

	// Turning a listener off closes it.
	if err := h.Update("listen_udp = \"127.0.0.2:0\"\n"); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Addrs()["tcp"]; ok {
		t.Fatal("TCP listener still open")
	}
	ln, err := net.Listen("tcp", tcpAddr)
	if err != nil {
		t.Fatalf("TCP address %s still bound: %v", tcpAddr, err)
	}
	ln.Close()
}

// TestReloadWithoutLoss streams lines over UDP while the receiver is
// reloaded over and over (mapping changes, a TCP address that moves), and
// checks that every line was counted.
func TestReloadWithoutLoss(t *testing.T) {
	variant := func(i int) string {
		tcp := []string{"127.0.0.1:0", "127.0.0.2:0"}[i%2]
		return udp + "listen_tcp = \"" + tcp + "\"\nread_buffer = 1048576\nmapping {\n  match = \"stream.*\"\n  name = \"stream_total\"\n  labels = { variant = \"" + fmt.Sprint(i) + "\" }\n}\n"
	}
	h, r := startReceiver(t, variant(0))
	addr := r.addr(t, "udp")
	const (
		chunks       = 40
		perChunk     = 50 // datagrams
		linesPerDgrm = 5
		total        = chunks * perChunk * linesPerDgrm
	)
	linesSeen := func() float64 { return value(t, h.Registry, "statsd_exporter_lines_total", nil) }

	var wg sync.WaitGroup
	errc := make(chan error, 1)
	progress := make(chan int, chunks)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(progress)
		c, err := net.Dial("udp", addr)
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		dgram := []byte(strings.TrimSuffix(strings.Repeat("stream.hits:1|c\n", linesPerDgrm), "\n"))
		for i := range chunks {
			for range perChunk {
				if _, err := c.Write(dgram); err != nil {
					errc <- err
					return
				}
			}
			progress <- i
			// Let the receiver catch up so that the kernel's buffer never
			// overflows: the test is about reloads, not about load.
			deadline := time.Now().Add(waitFor)
			for linesSeen() < float64((i+1)*perChunk*linesPerDgrm) {
				if time.Now().After(deadline) {
					errc <- errors.New("receiver fell behind")
					return
				}
				time.Sleep(time.Millisecond)
			}
		}
	}()
	reloads := 0
	for i := range progress {
		if i%2 == 0 {
			reloads++
			if err := h.Update(variant(reloads)); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	waitValue(t, h.Registry, "statsd_exporter_lines_total", nil, total)
	g := h.Gatherer()
	sum := 0.0
	for i := 0; i <= reloads; i++ {
		if v := value(t, g, "stream_total", map[string]string{"variant": fmt.Sprint(i)}); v > 0 {
			sum += v
		}
	}
	if sum != total {
		t.Fatalf("counted %v of %d lines across %d reloads", sum, total, reloads)
	}
	if v := value(t, h.Registry, "statsd_exporter_config_reloads_total", map[string]string{"outcome": "success"}); v != float64(reloads) {
		t.Fatalf("%v successful reloads, want %d", v, reloads)
	}
}

func TestStopReleasesEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sock := sockPath(t)
	h, r := startReceiver(t, udp+"listen_tcp = \"127.0.0.1:0\"\nlisten_unixgram = \""+sock+"\"\n")
	g := h.Gatherer()
	udpAddr, tcpAddr := r.addr(t, "udp"), r.addr(t, "tcp")

	idle, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := idle.Write([]byte("tcp.hits:1|c\n")); err != nil {
		t.Fatal(err)
	}
	send(t, "udp", udpAddr, "udp.hits:1|c")
	send(t, "unixgram", sock, "unix.hits:1|c")
	waitValue(t, g, "tcp_hits", nil, 1)
	waitValue(t, g, "udp_hits", nil, 1)
	waitValue(t, g, "unix_hits", nil, 1)

	if err := h.Stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Every socket is released...
	pc, err := net.ListenPacket("udp", udpAddr)
	if err != nil {
		t.Fatalf("UDP %s still bound: %v", udpAddr, err)
	}
	pc.Close()
	ln, err := net.Listen("tcp", tcpAddr)
	if err != nil {
		t.Fatalf("TCP %s still bound: %v", tcpAddr, err)
	}
	ln.Close()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("unix socket %s left behind: %v", sock, err)
	}
	// ... the open connection is closed by the receiver ...
	idle.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := idle.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("idle TCP connection: want EOF, got %v", err)
	}
	// ... and every goroutine has ended (checked by goleak on return).
}

func TestRestartKeepsSeries(t *testing.T) {
	h, r := startReceiver(t, udp)
	g := h.Gatherer()
	send(t, "udp", r.addr(t, "udp"), "hits:1|c")
	waitValue(t, g, "hits", nil, 1)
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	h.Start()
	pipelinetest.Eventually(t, waitFor, r.running0, "receiver did not restart")
	send(t, "udp", r.addr(t, "udp"), "hits:1|c")
	waitValue(t, g, "hits", nil, 2)
}

// Update binds a changed address before the reload commits; an aborted
// Update (another component of the reload failed) releases it and changes
// nothing.
func TestUpdateAbortReleasesNewSockets(t *testing.T) {
	h, r := startReceiver(t, udp+"listen_tcp = \"127.0.0.1:0\"\n")
	tcpAddr := r.addr(t, "tcp")
	newTCP := pipelinetest.FreeTCPAddr(t)
	p, err := h.Prepare(udp + "listen_tcp = \"" + newTCP + "\"\nmax_series = 3\n")
	if err != nil {
		t.Fatal(err)
	}
	if ln, err := net.Listen("tcp", newTCP); err == nil {
		ln.Close()
		t.Fatal("Update did not bind the new address")
	}
	if got := r.addr(t, "tcp"); got != tcpAddr {
		t.Fatalf("the prepared socket serves before Commit: %s", got)
	}
	p.Abort()
	ln, err := net.Listen("tcp", newTCP)
	if err != nil {
		t.Fatalf("Abort did not release %s: %v", newTCP, err)
	}
	ln.Close()
	if got := r.addr(t, "tcp"); got != tcpAddr {
		t.Fatalf("TCP moved to %s after Abort", got)
	}
	if v := value(t, h.Registry, "sluice_statsd_max_series", nil); v != DefaultMaxSeries {
		t.Fatalf("max_series applied by an aborted update: %v", v)
	}
	send(t, "tcp", tcpAddr, "kept:1|c")
	waitValue(t, h.Gatherer(), "kept", nil, 1)
}
