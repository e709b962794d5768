// Package ports picks free loopback ports for the bench programs' targets.
package ports

import "net"

// Free returns n free loopback TCP addresses, all different: each is held
// open until every one is picked. Picked one by one, a port just released
// can be handed out again, and a target then finds one of its own ports
// taken by another of its listeners.
func Free(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}
