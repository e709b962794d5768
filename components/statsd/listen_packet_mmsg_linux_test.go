//go:build linux && (amd64 || arm64)

package statsd

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
)

// TestRecvBufsGrowOnBacklog checks that a reader holds one datagram slot
// while its socket holds one datagram at a time, takes every slot once two
// reads in a row find datagrams (a backlog), and
// returns every datagram whole either way, the largest included.
func TestRecvBufsGrowOnBacklog(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	out, err := net.Dial("udp", conn.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	raw, err := conn.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rb := newRecvBufs()
	if rb.slots != 0 {
		t.Fatalf("a new reader holds %d slots, want none before its first read", rb.slots)
	}
	// drain reads until the socket is empty and returns the datagrams.
	drain := func() []string {
		var got []string
		for {
			var n int
			var rerr error
			if err := raw.Control(func(fd uintptr) { n, rerr = rb.recv(fd) }); err != nil {
				t.Fatal(err)
			}
			if errors.Is(rerr, syscall.EAGAIN) {
				return got
			}
			if rerr != nil {
				t.Fatal(rerr)
			}
			for i := range n {
				got = append(got, string(rb.datagram(i)))
			}
		}
	}

	// One datagram at a time (loopback queues a datagram before Write
	// returns): one slot.
	for i := range 3 {
		if _, err := out.Write([]byte(fmt.Sprintf("alone.%d:1|c", i))); err != nil {
			t.Fatal(err)
		}
		if got := drain(); len(got) != 1 || got[0] != fmt.Sprintf("alone.%d:1|c", i) {
			t.Fatalf("read %q, want the one datagram sent", got)
		}
		if rb.slots != 1 {
			t.Fatalf("after single datagrams the reader holds %d slots, want 1", rb.slots)
		}
	}

	// A backlog: two reads in a row find datagrams, and the next takes
	// every slot.
	big := make([]byte, maxDatagram-28-8) // the largest UDP payload over IPv4
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	want := []string{"b.0:1|c", string(big)}
	for i := 2; i < 2*recvSlots+3; i++ {
		want = append(want, fmt.Sprintf("b.%d:1|c", i))
	}
	for _, d := range want {
		if _, err := out.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	got := drain()
	if rb.slots != recvSlots {
		t.Errorf("after a backlog the reader holds %d slots, want %d", rb.slots, recvSlots)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d datagrams, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("datagram %d: read %d bytes %.20q, want %d bytes %.20q", i, len(got[i]), got[i], len(want[i]), want[i])
		}
	}
}
