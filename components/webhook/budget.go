package webhook

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
)

// DefaultMaxUnverifiedBytes is the default bound on the bytes of all
// webhook bodies read but not yet verified (raised to the largest
// webhook's max_body when that is larger).
const DefaultMaxUnverifiedBytes = 32 << 20

// budget bounds the bytes of all webhook bodies being read before their
// signature is verified: anyone can send them, so together they must not
// hold more memory than max, however many connections send slowly.
type budget struct{ used atomic.Int64 }

// take reserves n bytes under max; false (nothing reserved) over it.
func (b *budget) take(n, max int64) bool {
	if b.used.Add(n) > max {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *budget) give(n int64) { b.used.Add(-n) }

// errBudget: the body would take the unverified bytes over their bound.
var errBudget = errors.New("too many unverified webhook bytes in flight; retry later")

// chunkSize is the unit in which unverified bodies are read and reserved.
const chunkSize = 64 << 10

// chunks is a body read in fixed-size pieces: growing it never copies, so
// a stalled body leaves no garbage behind, and the pieces go back to a
// pool for the next body.
type chunks struct {
	pool *sync.Pool // of *[chunkSize]byte
	bufs []*[chunkSize]byte
	n    int // bytes in all
}

// writeTo feeds every byte, in order, to w (a hash).
func (c *chunks) writeTo(w io.Writer) {
	rest := c.n
	for _, b := range c.bufs {
		k := min(rest, chunkSize)
		_, _ = w.Write(b[:k])
		rest -= k
	}
}

// bytes is the body in one slice (a copy: the chunks can be released).
func (c *chunks) bytes() []byte {
	out := make([]byte, 0, c.n)
	rest := c.n
	for _, b := range c.bufs {
		k := min(rest, chunkSize)
		out = append(out, b[:k]...)
		rest -= k
	}
	return out
}

// release returns the pieces to the pool.
func (c *chunks) release() {
	for _, b := range c.bufs {
		c.pool.Put(b)
	}
	c.bufs, c.n = nil, 0
}

// readUnverified reads a body of at most limit bytes in chunks, each
// reserved in the budget before it is taken: a client that announces a
// large body and sends little holds little, and all of them together hold
// at most the budget's bound. It returns the chunks and the bytes reserved,
// which the caller gives back after releasing the chunks (once the body is
// verified or refused). Errors: an *httpError (413; 503 when the budget is
// spent; 408 for a body that stalled past the read timeout; 400).
func readUnverified(w http.ResponseWriter, r *http.Request, limit, bound int64, b *budget, pool *sync.Pool) (*chunks, int64, error) {
	c := &chunks{pool: pool}
	if r.ContentLength > limit {
		return c, 0, errCode(http.StatusRequestEntityTooLarge, "body larger than %d bytes", limit)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var reserved int64
	for {
		if c.n == len(c.bufs)*chunkSize {
			if !b.take(chunkSize, bound) {
				return c, reserved, errBudgetHTTP()
			}
			reserved += chunkSize
			c.bufs = append(c.bufs, pool.Get().(*[chunkSize]byte))
		}
		last := c.bufs[len(c.bufs)-1]
		off := c.n % chunkSize
		n, err := body.Read(last[off:])
		c.n += n
		if err == io.EOF {
			return c, reserved, nil
		}
		if err != nil {
			return c, reserved, readErr(err, limit)
		}
	}
}

func errBudgetHTTP() error {
	return &httpError{code: http.StatusServiceUnavailable, msg: errBudget.Error()}
}

// readErr maps a body read error to its answer.
func readErr(err error, limit int64) error {
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mbe):
		return errCode(http.StatusRequestEntityTooLarge, "body larger than %d bytes", limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errCode(http.StatusRequestTimeout, "the body was not received within the read timeout")
	}
	return errCode(http.StatusBadRequest, "reading the body: %v", err)
}
