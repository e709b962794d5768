package pipeline

import (
	"net/http"
	"time"
)

// Default read timeouts of every HTTP listener (HTTPTimeouts).
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadBodyTimeout   = 30 * time.Second
)

// HTTPTimeouts bound how long a client may take to send a request, on
// every listener of the agent: a client that stalls holds a connection,
// a goroutine and whatever of its body was read, so it is cut off. Set by
// --web.read-header-timeout and --web.read-body-timeout.
type HTTPTimeouts struct {
	// ReadHeader bounds the request line and headers, from the start of
	// the request.
	ReadHeader time.Duration
	// ReadBody bounds the body, after the headers: the whole request must
	// be read within ReadHeader + ReadBody (http.Server's ReadTimeout).
	ReadBody time.Duration
}

// WithDefaults fills a zero field with its default.
func (t HTTPTimeouts) WithDefaults() HTTPTimeouts {
	if t.ReadHeader <= 0 {
		t.ReadHeader = DefaultReadHeaderTimeout
	}
	if t.ReadBody <= 0 {
		t.ReadBody = DefaultReadBodyTimeout
	}
	return t
}

// Apply sets srv's read timeouts. The idle timeout of keep-alive
// connections stays that of net/http (the read timeout, when unset).
func (t HTTPTimeouts) Apply(srv *http.Server) {
	t = t.WithDefaults()
	srv.ReadHeaderTimeout = t.ReadHeader
	srv.ReadTimeout = t.ReadHeader + t.ReadBody
}
