package webhook

import (
	"errors"
	"io"
	"net/http"
	"os"
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

// readChunk is the first buffer of a body, and its least growth.
const readChunk = 64 << 10

// readUnverified reads a body of at most limit bytes within the budget,
// which counts the buffer's capacity (the memory held, not the bytes
// announced): the buffer grows as bytes arrive, doubling up to the
// Content-Length or limit, and each growth is reserved first. So a client
// that announces a large body and sends nothing holds one small buffer.
// It returns the body and the bytes reserved, which the caller gives back
// once the body is verified or refused. Errors: an *httpError (413; 503
// when the budget is spent; 408 for a body that stalled past the read
// timeout; 400).
func readUnverified(w http.ResponseWriter, r *http.Request, limit, max int64, b *budget) ([]byte, int64, error) {
	if r.ContentLength > limit {
		return nil, 0, errCode(http.StatusRequestEntityTooLarge, "body larger than %d bytes", limit)
	}
	ceiling := limit + 1 // one more byte tells a body over the limit
	if r.ContentLength >= 0 {
		ceiling = r.ContentLength + 1 // one more byte sees the EOF without growing
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var buf []byte
	var reserved int64
	for {
		if len(buf) == cap(buf) {
			next := min(max64(2*int64(cap(buf)), readChunk), ceiling)
			if next <= int64(cap(buf)) {
				next = int64(cap(buf)) + readChunk // past the announced length: net/http refuses it
			}
			if !b.take(next, max) {
				return nil, reserved, errBudgetHTTP()
			}
			nb := make([]byte, len(buf), next)
			copy(nb, buf)
			b.give(int64(cap(buf)))
			reserved += next - int64(cap(buf))
			buf = nb
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, reserved, nil
		}
		if err != nil {
			return nil, reserved, readErr(err, limit)
		}
	}
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
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
