package statsd

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
)

// Sockets: binding the configured addresses, moving them on a reload, and
// the listeners that serve them (listen_packet.go: UDP and unixgram;
// listen_tcp.go: TCP). Each listener is given what it needs (the reporter,
// a way to make a reader's processor), not the Receiver.

type listenSpec struct {
	key  string // "udp", "tcp", "unixgram"
	addr string
}

func specs(a Arguments) []listenSpec {
	return []listenSpec{{"udp", a.ListenUDP}, {"tcp", a.ListenTCP}, {"unixgram", a.ListenUnixgram}}
}

// bindChanged binds the sockets whose address args changes (r.mu held).
// If one fails, those already bound are closed and nothing has changed.
func (r *Receiver) bindChanged(args Arguments) (map[string]listener, error) {
	fresh := map[string]listener{}
	for _, sp := range specs(args) {
		cur, ok := r.listeners[sp.key]
		if sp.addr == "" || (ok && cur.Spec() == sp.addr) {
			continue
		}
		l, err := r.bind(sp, args)
		if err != nil {
			for _, f := range fresh {
				f.Close()
			}
			return nil, err
		}
		fresh[sp.key] = l
	}
	return fresh, nil
}

// swapListeners starts the fresh sockets, then closes the ones they
// replace and the ones args turns off, and adjusts the ones kept (r.mu
// held). Readers of a closed socket finish the packet in hand first.
func (r *Receiver) swapListeners(args Arguments, fresh map[string]listener) {
	for _, sp := range specs(args) {
		cur, ok := r.listeners[sp.key]
		if f, isNew := fresh[sp.key]; isNew {
			f.Start()
			r.listeners[sp.key] = f
			if ok {
				cur.Close()
				r.log.Info("statsd listener moved", "proto", sp.key, "address", f.Addr())
			}
			continue
		}
		if ok && sp.addr == "" {
			cur.Close()
			delete(r.listeners, sp.key)
			continue
		}
		if ok {
			cur.Adjust(args, r.log)
		}
	}
}

func (r *Receiver) addrsLocked() map[string]string {
	out := map[string]string{}
	for k, l := range r.listeners {
		out[k] = l.Addr()
	}
	return out
}

// Addrs returns the bound addresses by protocol ("udp", "tcp",
// "unixgram"): with port 0 in the configuration, the port the system chose.
func (r *Receiver) Addrs() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addrsLocked()
}

// listener is one bound socket and the goroutines serving it.
type listener interface {
	Spec() string // the configured address
	Addr() string // the bound address
	Start()
	// Adjust applies options that need no new socket (read buffer, mode).
	Adjust(args Arguments, log *slog.Logger)
	// Close closes the socket and waits for its goroutines.
	Close()
}

func (r *Receiver) bind(sp listenSpec, args Arguments) (listener, error) {
	switch sp.key {
	case "udp":
		c, err := net.ListenPacket("udp", sp.addr)
		if err != nil {
			return nil, fmt.Errorf("listen_udp: %w", err)
		}
		pl := &packetListener{rep: r.reporter, kdrops: r.kdrops, newProcessor: r.newWatchedProcessor, spec: sp.addr, conn: c, packets: r.m.udpPackets, uncoalesced: r.m.readsUncoalesced}
		if err := pl.setReadBuffer(args.ReadBuffer); err != nil {
			c.Close()
			return nil, fmt.Errorf("listen_udp: read_buffer: %w", err)
		}
		pl.inode = socketInode(c)
		r.kdrops.add(pl.inode)
		return pl, nil
	case "tcp":
		ln, err := net.Listen("tcp", sp.addr)
		if err != nil {
			return nil, fmt.Errorf("listen_tcp: %w", err)
		}
		return newTCPListener(r.reporter, r.newWatchedProcessor, &r.cfg, &r.tcpBufs, sp.addr, ln, args), nil
	case "unixgram":
		return r.bindUnixgram(sp.addr, args)
	}
	return nil, fmt.Errorf("unknown listener %q", sp.key)
}

func (r *Receiver) bindUnixgram(path string, args Arguments) (listener, error) {
	abstract := strings.HasPrefix(path, "@")
	if !abstract {
		if fi, err := os.Stat(path); err == nil {
			if fi.Mode()&os.ModeSocket == 0 {
				return nil, fmt.Errorf("listen_unixgram: %s exists and is not a socket", path)
			}
			// A socket file nobody serves is left over from a crash: reuse
			// the path. One that answers belongs to a live process.
			if c, err := net.Dial("unixgram", path); err == nil {
				c.Close()
				return nil, fmt.Errorf("listen_unixgram: %s is in use", path)
			}
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("listen_unixgram: removing stale socket: %w", err)
			}
		}
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram", Name: path})
	if err != nil {
		return nil, fmt.Errorf("listen_unixgram: %w", err)
	}
	pl := &packetListener{rep: r.reporter, kdrops: r.kdrops, newProcessor: r.newWatchedProcessor, spec: path, conn: c, packets: r.m.unixgramPackets, uncoalesced: r.m.readsUncoalesced}
	if !abstract {
		pl.unlink = path
		mode, _ := parseMode(args.UnixgramMode) // validated
		if err := os.Chmod(path, os.FileMode(mode)); err != nil {
			c.Close()
			os.Remove(path)
			return nil, fmt.Errorf("listen_unixgram: unixgram_mode: %w", err)
		}
		pl.mode = args.UnixgramMode
	}
	if err := pl.setReadBuffer(args.ReadBuffer); err != nil {
		pl.closeConns()
		return nil, fmt.Errorf("listen_unixgram: read_buffer: %w", err)
	}
	return pl, nil
}
