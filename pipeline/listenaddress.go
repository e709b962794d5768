package pipeline

// ListenAddress is a socket a component binds.
type ListenAddress struct {
	// Network is "tcp", "udp" or "unixgram" ("tcp4", "udp6"... count as
	// their family).
	Network string
	// Address is host:port for tcp and udp, a socket path for unixgram.
	Address string
	// Attr is the argument that sets it, so the diagnostic points there
	// (the block when the address is a default).
	Attr string
}

// ListenAddressUser is implemented by Arguments types of components that
// bind sockets. The loader refuses a config in which two components (or a
// component and the agent's own HTTP server) want the same socket, so the
// clash is a diagnostic at load time instead of a component that cannot
// bind at run time.
type ListenAddressUser interface {
	ListenAddresses() []ListenAddress
}
