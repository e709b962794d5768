package kubewatch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Meta is the part of an object's metadata a watch needs.
type Meta struct {
	Name            string `json:"name"`
	Namespace       string `json:"namespace"`
	ResourceVersion string `json:"resourceVersion"`
	Generation      int64  `json:"generation"`
}

// Object is a trimmed object: a struct the JSON decoder fills with the few
// fields it declares (and skips the rest of the object without keeping it).
type Object interface {
	GetMeta() *Meta
}

// Handler receives what a Watch learns. Calls come from the watch's
// goroutine, one at a time.
type Handler interface {
	// ListStart: a full list begins (after the first, a relist).
	ListStart()
	// Upsert: an object exists with this state (from a list or a watch event).
	Upsert(obj Object)
	// Delete: the object is gone.
	Delete(m *Meta)
	// ListDone: the list is complete; objects not upserted since
	// ListStart no longer exist.
	ListDone()
	// Failed: a list or watch failed; expired says the resource version was
	// too old (the watch relists; not a fault).
	Failed(err error, expired bool)
	// Contact: a list or watch request was answered (clears a failure).
	Contact()
	// Dropped: an event or object was skipped (reason "oversized" or
	// "undecodable"); the watch goes on. m is what could be read of the
	// object's metadata (nil: nothing).
	Dropped(m *Meta, reason string, err error)
}

// Defaults.
const (
	DefaultPageSize = 500
	// DefaultMaxObjectBytes bounds an event (and a list item): the API
	// server stores objects of at most 1.5 MiB by default (etcd's request
	// limit), so a larger one is an error.
	DefaultMaxObjectBytes = 4 << 20
)

// Watch lists and then watches one resource, keeping a Handler current.
type Watch struct {
	Client        *Client
	Resource      Resource
	Namespace     string // "" = all namespaces
	LabelSelector string
	FieldSelector string
	// New returns a fresh trimmed object to decode into (a pointer).
	New     func() Object
	Handler Handler

	PageSize       int // list page size (limit); 0 = DefaultPageSize
	MaxObjectBytes int // 0 = DefaultMaxObjectBytes
	// Backoff bounds (0: 800ms and 30s), jittered.
	MinBackoff, MaxBackoff time.Duration
}

func (w *Watch) maxObject() int {
	if w.MaxObjectBytes > 0 {
		return w.MaxObjectBytes
	}
	return DefaultMaxObjectBytes
}

// Run lists, then watches from the list's resource version until ctx ends:
// a closed watch is re-opened from the last resource version seen, an
// expired one (410 Gone) relists, other failures are retried with
// jittered exponential backoff.
func (w *Watch) Run(ctx context.Context) {
	minB, maxB := w.MinBackoff, w.MaxBackoff
	if minB <= 0 {
		minB = 800 * time.Millisecond
	}
	if maxB <= 0 {
		maxB = 30 * time.Second
	}
	backoff := minB
	wait := func() bool {
		d := backoff/2 + rand.N(backoff/2+1) // jitter: [backoff/2, backoff]
		backoff = min(2*backoff, maxB)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	rv := ""
	for ctx.Err() == nil {
		if rv == "" {
			var err error
			rv, err = w.list(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				rv = ""
				w.Handler.Failed(err, IsGone(err))
				if !wait() {
					return
				}
				continue
			}
		}
		opened, err := w.watch(ctx, &rv)
		if ctx.Err() != nil {
			return
		}
		if opened {
			backoff = minB
		}
		switch {
		case err == nil: // the server ended the watch (its timeout): re-watch
		case IsGone(err):
			w.Handler.Failed(err, true)
			rv = "" // relist at once
		default:
			w.Handler.Failed(err, false)
			if !wait() {
				return
			}
		}
	}
}

func (w *Watch) query() url.Values {
	q := url.Values{}
	if w.LabelSelector != "" {
		q.Set("labelSelector", w.LabelSelector)
	}
	if w.FieldSelector != "" {
		q.Set("fieldSelector", w.FieldSelector)
	}
	return q
}

// list lists every object, page by page, and returns the list's resource
// version.
func (w *Watch) list(ctx context.Context) (string, error) {
	w.Handler.ListStart()
	limit := w.PageSize
	if limit <= 0 {
		limit = DefaultPageSize
	}
	cont, rv := "", ""
	for {
		q := w.query()
		q.Set("limit", strconv.Itoa(limit))
		if cont != "" {
			q.Set("continue", cont)
		}
		resp, err := w.Client.request(ctx, http.MethodGet, w.Resource.Path(w.Namespace, ""), q, nil)
		if err != nil {
			return "", fmt.Errorf("list: %w", err)
		}
		w.Handler.Contact()
		rv, cont, err = w.decodeList(resp.Body)
		resp.Body.Close()
		if err != nil {
			return "", fmt.Errorf("list: %w", err)
		}
		if cont == "" {
			break
		}
	}
	w.Handler.ListDone()
	return rv, nil
}

// boundedReader fails once more than max bytes were read since mark: a
// list item larger than the bound cannot make the decoder buffer it.
type boundedReader struct {
	r        io.Reader
	n, mark  int64
	max      int64
	exceeded bool
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n-b.mark > b.max {
		b.exceeded = true
		return 0, errObjectTooLarge
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

var errObjectTooLarge = errors.New("object larger than the bound")

// decodeList streams a list's items into the handler, one at a time: the
// list is never held in full.
func (w *Watch) decodeList(body io.Reader) (rv, cont string, err error) {
	// The decoder reads ahead: allow one read buffer beyond the bound.
	br := &boundedReader{r: body, max: int64(w.maxObject()) + 64<<10}
	dec := json.NewDecoder(br)
	wrap := func(err error) error {
		if br.exceeded {
			return fmt.Errorf("an item is larger than %d bytes: %w", w.maxObject(), err)
		}
		return fmt.Errorf("decoding the list: %w", err)
	}
	if err := expectDelim(dec, '{'); err != nil {
		return "", "", wrap(err)
	}
	for dec.More() {
		br.mark = br.n
		tok, err := dec.Token()
		if err != nil {
			return "", "", wrap(err)
		}
		key, _ := tok.(string)
		switch key {
		case "metadata":
			var md struct {
				ResourceVersion string `json:"resourceVersion"`
				Continue        string `json:"continue"`
			}
			if err := dec.Decode(&md); err != nil {
				return "", "", wrap(err)
			}
			rv, cont = md.ResourceVersion, md.Continue
		case "items":
			if err := expectDelim(dec, '['); err != nil {
				return "", "", wrap(err)
			}
			for dec.More() {
				br.mark = br.n
				obj := w.New()
				err := dec.Decode(obj)
				var te *json.UnmarshalTypeError
				switch {
				case errors.As(err, &te):
					// The decoder stays in step after a type error: skip
					// the item, go on.
					w.Handler.Dropped(obj.GetMeta(), "undecodable", fmt.Errorf("list item %s/%s: %w", obj.GetMeta().Namespace, obj.GetMeta().Name, err))
					continue
				case err != nil:
					return "", "", wrap(err)
				}
				w.Handler.Upsert(obj)
			}
			if err := expectDelim(dec, ']'); err != nil {
				return "", "", wrap(err)
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return "", "", wrap(err)
			}
		}
	}
	if rv == "" {
		return "", "", errors.New("decoding the list: no resourceVersion")
	}
	return rv, cont, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("want %q, got %v", d, tok)
	}
	return nil
}

// watch opens a watch from *rv and hands its events to the handler,
// advancing *rv, until the server ends it (nil) or it fails. opened says
// the server accepted the watch.
func (w *Watch) watch(ctx context.Context, rv *string) (opened bool, err error) {
	q := w.query()
	q.Set("watch", "1")
	q.Set("resourceVersion", *rv)
	q.Set("allowWatchBookmarks", "true")
	// The server ends the watch after this; spread like client-go's
	// reflector so that many watches do not re-open together.
	q.Set("timeoutSeconds", strconv.Itoa(300+rand.IntN(300)))
	resp, err := w.Client.request(ctx, http.MethodGet, w.Resource.Path(w.Namespace, ""), q, nil)
	if err != nil {
		return false, fmt.Errorf("watch: %w", err)
	}
	defer resp.Body.Close()
	w.Handler.Contact()
	return true, w.events(resp.Body, rv)
}

// event is one watch event; Object holds a pointer to the trimmed struct
// the object is decoded into.
type event struct {
	Type   string `json:"type"`
	Object any    `json:"object"`
}

// events reads newline-framed watch events (the API server writes one
// JSON document per line). A line longer than the bound is skipped without
// being held: the stream stays in step, which a json.Decoder could not do
// after an oversized value.
func (w *Watch) events(body io.Reader, rv *string) error {
	r := bufio.NewReaderSize(body, 16<<10)
	var line []byte
	for {
		if cap(line) > 256<<10 {
			line = nil // do not keep a large event's buffer for the watch's life
		}
		var oversized bool
		var err error
		line, oversized, err = readLine(r, line[:0], w.maxObject())
		if err != nil {
			if errors.Is(err, io.EOF) && len(bytes.TrimSpace(line)) == 0 {
				return nil
			}
			return fmt.Errorf("watch stream: %w", err)
		}
		if oversized {
			w.Handler.Dropped(nil, "oversized", fmt.Errorf("watch event larger than %d bytes", w.maxObject()))
			continue
		}
		if err := w.handle(bytes.TrimSpace(line), rv); err != nil {
			return err
		}
	}
}

// handle decodes and applies one event; an error ends the watch.
func (w *Watch) handle(line []byte, rv *string) error {
	if len(line) == 0 {
		return nil
	}
	obj := w.New()
	ev := event{Object: obj}
	err := json.Unmarshal(line, &ev)
	var te *json.UnmarshalTypeError
	if err != nil && !(errors.As(err, &te) && ev.Type == "ERROR") {
		w.Handler.Dropped(obj.GetMeta(), "undecodable", fmt.Errorf("watch event: %w", err))
		return nil
	}
	m := obj.GetMeta()
	switch ev.Type {
	case "ADDED", "MODIFIED":
		w.Handler.Upsert(obj)
	case "DELETED":
		w.Handler.Delete(m)
	case "BOOKMARK":
	case "ERROR":
		var st struct {
			Object status `json:"object"`
		}
		if err := json.Unmarshal(line, &st); err != nil {
			w.Handler.Dropped(nil, "undecodable", fmt.Errorf("watch error event: %w", err))
			return nil
		}
		return &APIError{Code: st.Object.Code, Reason: st.Object.Reason, Message: st.Object.Message}
	default:
		w.Handler.Dropped(nil, "undecodable", fmt.Errorf("watch event of unknown type %q", ev.Type))
		return nil
	}
	if m.ResourceVersion != "" {
		*rv = m.ResourceVersion
	}
	return nil
}

// readLine appends the next line of r to buf; a line longer than max is
// read to its end and discarded (oversized), never held.
func readLine(r *bufio.Reader, buf []byte, max int) (line []byte, oversized bool, err error) {
	for {
		chunk, err := r.ReadSlice('\n')
		if !oversized {
			if len(buf)+len(chunk) > max+1 {
				oversized, buf = true, buf[:0]
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == nil:
			return buf, oversized, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return buf, oversized, err
		}
	}
}
