package statsd

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// kernelDrops reports the datagrams the kernel dropped on the receiver's
// UDP sockets because their receive buffer was full: the sockets' "drops"
// column of /proc/net/udp and /proc/net/udp6 (the kernel's sk_drops),
// found by the socket's inode. Read at scrape time, so a burst of drops is
// seen even if no datagram follows it (SO_RXQ_OVFL only reports the count
// with the next datagram received). A socket's count starts at zero; what
// a closed socket dropped is kept, so the total never goes down.
type kernelDrops struct {
	mu     sync.Mutex
	live   map[uint64]struct{} // inodes of open UDP sockets
	closed float64             // drops of sockets closed since
	desc   *prometheus.Desc
	// procFiles are the tables read (tests may point elsewhere).
	procFiles []string
}

func newKernelDrops() *kernelDrops {
	return &kernelDrops{
		live: map[uint64]struct{}{},
		desc: prometheus.NewDesc("sluice_statsd_udp_kernel_drops_total",
			"UDP datagrams the kernel dropped because the receiver's socket buffer was full (from /proc/net/udp; each datagram may hold several lines). Raise read_buffer, or the CPUs for the receiver.",
			nil, nil),
		procFiles: []string{"/proc/net/udp", "/proc/net/udp6"},
	}
}

func (k *kernelDrops) add(inode uint64) {
	if inode == 0 {
		return
	}
	k.mu.Lock()
	k.live[inode] = struct{}{}
	k.mu.Unlock()
}

// remove forgets a socket about to be closed, keeping what it dropped.
func (k *kernelDrops) remove(inode uint64) {
	if inode == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.live[inode]; !ok {
		return
	}
	k.closed += k.read(map[uint64]struct{}{inode: {}})
	delete(k.live, inode)
}

// total is the drops of every socket the receiver opened (mu held inside).
func (k *kernelDrops) total() float64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.closed + k.read(k.live)
}

// read sums the drops of the sockets in inodes.
func (k *kernelDrops) read(inodes map[uint64]struct{}) float64 {
	if len(inodes) == 0 {
		return 0
	}
	var sum float64
	for _, f := range k.procFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // no IPv6, or not Linux
		}
		sum += procDrops(b, inodes)
	}
	return sum
}

// procDrops sums the "drops" column of the rows of a /proc/net/udp table
// whose inode is in inodes. The columns are found by the header's names;
// a row that does not parse is skipped.
func procDrops(table []byte, inodes map[uint64]struct{}) float64 {
	sc := bufio.NewScanner(bytes.NewReader(table))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	inodeCol, dropsCol := 0, 0 // counted from the end: 0 is not found
	var sum float64
	for first := true; sc.Scan(); first = false {
		f := bytes.Fields(sc.Bytes())
		if first {
			// "sl local_address rem_address st tx_queue rx_queue tr tm->when
			// retrnsmt uid timeout inode ref pointer drops": the header
			// has two more names than a row has fields before inode
			// ("tx_queue rx_queue" and "tr tm->when" are one field each in
			// a row), so count from the end, where both tables agree.
			for i, h := range f {
				switch string(h) {
				case "inode":
					inodeCol = i - len(f)
				case "drops":
					dropsCol = i - len(f)
				}
			}
			if inodeCol == 0 || dropsCol == 0 {
				return 0
			}
			continue
		}
		if len(f)+inodeCol < 0 || len(f)+dropsCol < 0 {
			continue
		}
		ino, err := strconv.ParseUint(string(f[len(f)+inodeCol]), 10, 64)
		if err != nil {
			continue
		}
		if _, ok := inodes[ino]; !ok {
			continue
		}
		if d, err := strconv.ParseUint(string(f[len(f)+dropsCol]), 10, 64); err == nil {
			sum += float64(d)
		}
	}
	return sum
}

func (k *kernelDrops) Describe(ch chan<- *prometheus.Desc) { ch <- k.desc }

func (k *kernelDrops) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(k.desc, prometheus.CounterValue, k.total())
}
