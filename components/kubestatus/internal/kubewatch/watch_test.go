package kubewatch

// These tests run the watch against an httptest API server speaking the
// list and watch protocol, for the faults a real kube-apiserver does not
// produce on demand: 410 Gone on a watch, torn, oversized and garbage
// event bodies, connections dropped mid-event. The component's tests run
// the same code against the real kube-apiserver.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

type testObj struct {
	Metadata Meta `json:"metadata"`
	Status   struct {
		Phase string `json:"phase"`
	} `json:"status"`
}

func (o *testObj) GetMeta() *Meta { return &o.Metadata }

// recorder is a Handler writing down what it is told.
type recorder struct {
	mu      sync.Mutex
	calls   []string
	dropped map[string]int
	failed  []error
	changed chan struct{}
}

func newRecorder() *recorder {
	return &recorder{dropped: map[string]int{}, changed: make(chan struct{}, 1000)}
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}
func (r *recorder) ListStart() { r.add("list") }
func (r *recorder) ListDone()  { r.add("listed") }
func (r *recorder) Upsert(o Object) {
	t := o.(*testObj)
	r.add(fmt.Sprintf("upsert %s/%s %s", t.Metadata.Namespace, t.Metadata.Name, t.Status.Phase))
}
func (r *recorder) Delete(m *Meta) { r.add("delete " + m.Namespace + "/" + m.Name) }
func (r *recorder) Contact()       {}
func (r *recorder) Dropped(_ *Meta, reason string, _ error) {
	r.mu.Lock()
	r.dropped[reason]++
	r.mu.Unlock()
	r.add("dropped " + reason)
}
func (r *recorder) Failed(err error, expired bool) {
	r.mu.Lock()
	r.failed = append(r.failed, err)
	r.mu.Unlock()
	r.add(fmt.Sprintf("failed expired=%v", expired))
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// waitFor waits until the calls contain want, in order.
func (r *recorder) waitFor(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		got := r.snapshot()
		i := 0
		for _, c := range got {
			if i < len(want) && c == want[i] {
				i++
			}
		}
		if i == len(want) {
			return
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("want in order %q\ngot %q", want, got)
		}
	}
}

// fakeAPI answers lists with items and watches with the next script of
// watches (then a watch that hangs until the client goes).
type fakeAPI struct {
	t       *testing.T
	mu      sync.Mutex
	lists   []string // list queries
	watches []string // watch queries
	items   func(page string) (body string)
	scripts []func(w http.ResponseWriter)
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.URL.Path != "/api/v1/namespaces/ns/pods" {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	if q.Get("watch") == "" {
		f.lists = append(f.lists, r.URL.RawQuery)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, f.items(q.Get("continue")))
		return
	}
	f.watches = append(f.watches, r.URL.RawQuery)
	var script func(http.ResponseWriter)
	if len(f.scripts) > 0 {
		script, f.scripts = f.scripts[0], f.scripts[1:]
	}
	f.mu.Unlock()
	if script == nil {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	script(w)
}

func (f *fakeAPI) counts() (lists, watches int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.lists), len(f.watches)
}

func pod(name, phase, rv string) string {
	return fmt.Sprintf(`{"kind":"Pod","metadata":{"name":%q,"namespace":"ns","resourceVersion":%q,"annotations":{"a":"b"}},"spec":{"containers":[{"name":"c"}]},"status":{"phase":%q}}`, name, rv, phase)
}

func ev(typ, obj string) string { return fmt.Sprintf(`{"type":%q,"object":%s}`+"\n", typ, obj) }

// events is a watch script writing the lines, then ending the watch.
func events(lines ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		for _, l := range lines {
			fmt.Fprint(w, l)
			w.(http.Flusher).Flush()
		}
	}
}

func start(t *testing.T, f *fakeAPI, maxObj int) (*recorder, context.CancelFunc, chan struct{}) {
	t.Helper()
	f.t = t
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	w := &Watch{Client: c, Resource: Resource{Version: "v1", Resource: "pods"}, Namespace: "ns",
		LabelSelector: "app=x", New: func() Object { return new(testObj) }, Handler: rec,
		PageSize: 2, MaxObjectBytes: maxObj, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return rec, cancel, done
}

func twoPages(page string) string {
	if page == "" {
		return `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"10","continue":"p2"},"items":[` + pod("a", "Running", "5") + "," + pod("b", "Pending", "6") + `]}`
	}
	return `{"kind":"PodList","metadata":{"resourceVersion":"10"},"items":[` + pod("c", "Running", "7") + `]}`
}

// TestListPagesThenWatch: the list is paged (limit, continue, selectors
// kept), every item handed over, then a watch from the list's resource
// version with bookmarks; a watch the server ends is re-opened from the
// last resource version seen (a bookmark's).
func TestListPagesThenWatch(t *testing.T) {
	f := &fakeAPI{items: twoPages, scripts: []func(http.ResponseWriter){
		events(ev("ADDED", pod("d", "Pending", "11")), ev("MODIFIED", pod("d", "Running", "12")),
			ev("DELETED", pod("a", "Running", "13")), ev("BOOKMARK", `{"kind":"Pod","metadata":{"resourceVersion":"20"}}`)),
	}}
	rec, _, _ := start(t, f, 0)
	rec.waitFor(t, "list", "upsert ns/a Running", "upsert ns/b Pending", "upsert ns/c Running", "listed",
		"upsert ns/d Pending", "upsert ns/d Running", "delete ns/a")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, w := f.counts(); w >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not re-watched after the server ended the watch")
		}
		time.Sleep(time.Millisecond)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.lists) != 2 || !strings.Contains(f.lists[0], "limit=2") || !strings.Contains(f.lists[1], "continue=p2") ||
		!strings.Contains(f.lists[1], "labelSelector=app%3Dx") {
		t.Errorf("list queries %q", f.lists)
	}
	if !strings.Contains(f.watches[0], "resourceVersion=10") || !strings.Contains(f.watches[0], "allowWatchBookmarks=true") ||
		!strings.Contains(f.watches[0], "labelSelector=app%3Dx") {
		t.Errorf("first watch query %q", f.watches[0])
	}
	if !strings.Contains(f.watches[1], "resourceVersion=20") {
		t.Errorf("re-watch %q: want the bookmark's resource version 20", f.watches[1])
	}
	if len(rec.failed) != 0 {
		t.Errorf("failures: %v", rec.failed)
	}
}

// TestGoneRelists: a 410 Gone, as an ERROR event or as the watch
// request's answer, relists (counted as expired, not as an error).
func TestGoneRelists(t *testing.T) {
	gone := `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}`
	f := &fakeAPI{items: twoPages, scripts: []func(http.ResponseWriter){
		events(ev("ERROR", gone)),
		func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusGone)
			fmt.Fprint(w, gone)
		},
	}}
	rec, _, _ := start(t, f, 0)
	rec.waitFor(t, "list", "listed", "failed expired=true", "list", "listed", "failed expired=true", "list", "listed")
}

// TestBadEventsSkipped: garbage, an oversized event, an object of the
// wrong shape and an unknown event type are each counted and skipped; the
// watch goes on (no reconnect) and the next good event is applied.
func TestBadEventsSkipped(t *testing.T) {
	f := &fakeAPI{items: twoPages, scripts: []func(http.ResponseWriter){
		events("this is not json\n",
			ev("ADDED", pod("huge", strings.Repeat("x", 5000), "11")),
			ev("MODIFIED", `{"metadata":{"name":"e","namespace":"ns"},"status":{"phase":7}}`),
			ev("SURPRISE", pod("f", "Running", "12")),
			"\n",
			ev("ADDED", pod("g", "Running", "13")),
		),
	}}
	rec, _, _ := start(t, f, 1000)
	rec.waitFor(t, "listed", "dropped undecodable", "dropped oversized", "dropped undecodable", "dropped undecodable", "upsert ns/g Running")
	if len(rec.failed) != 0 {
		t.Errorf("the watch failed over a bad event: %v", rec.failed)
	}
	if rec.dropped["oversized"] != 1 || rec.dropped["undecodable"] != 3 {
		t.Errorf("dropped %v", rec.dropped)
	}
}

// TestTornStream: the connection drops in the middle of an event: a
// failure, then a re-watch from the last complete event's version.
func TestTornStream(t *testing.T) {
	f := &fakeAPI{items: twoPages, scripts: []func(http.ResponseWriter){
		func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, ev("ADDED", pod("d", "Running", "11")))
			w.(http.Flusher).Flush()
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				panic(err)
			}
			// A chunk announcing more than follows, then the connection goes.
			fmt.Fprint(buf, "40\r\n{\"type\":\"MODIFIED\",\"object\":{\"meta")
			buf.Flush()
			conn.Close()
		},
	}}
	rec, _, _ := start(t, f, 0)
	rec.waitFor(t, "listed", "upsert ns/d Running", "failed expired=false")
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.watches)
		var last string
		if n > 0 {
			last = f.watches[n-1]
		}
		f.mu.Unlock()
		if n >= 2 {
			if !strings.Contains(last, "resourceVersion=11") {
				t.Fatalf("re-watch %q: want resourceVersion=11", last)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no re-watch after the torn stream")
		}
		time.Sleep(time.Millisecond)
	}
	if l, _ := f.counts(); l != 2 {
		t.Errorf("%d list requests: a dropped connection must not relist", l)
	}
}

// TestListForbidden: an error answer is a failure carrying the API
// server's message, retried with backoff; cancelling ends Run.
func TestListForbidden(t *testing.T) {
	f := &fakeAPI{items: func(string) string { return "" }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"kind":"Status","status":"Failure","message":"pods is forbidden: User \"x\" cannot list resource \"pods\"","reason":"Forbidden","code":403}`)
	}))
	t.Cleanup(srv.Close)
	_ = f
	c, err := New(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	w := &Watch{Client: c, Resource: Resource{Version: "v1", Resource: "pods"}, New: func() Object { return new(testObj) },
		Handler: rec, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	rec.waitFor(t, "failed expired=false", "failed expired=false")
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if Code(rec.failed[0]) != 403 || !strings.Contains(rec.failed[0].Error(), `User "x" cannot list resource "pods"`) {
		t.Errorf("failure %v", rec.failed[0])
	}
}

// TestCancelDuringWatch: a hanging watch ends when the context does.
func TestCancelDuringWatch(t *testing.T) {
	f := &fakeAPI{items: twoPages}
	rec, cancel, done := start(t, f, 0)
	rec.waitFor(t, "listed")
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestListBadItems: a list item of the wrong shape is counted and skipped
// (the others are handed over, the list completes); an item larger than
// the bound fails the list without being buffered, retried with backoff.
func TestListBadItems(t *testing.T) {
	var mu sync.Mutex
	big := false
	f := &fakeAPI{items: func(string) string {
		mu.Lock()
		defer mu.Unlock()
		if big {
			return `{"metadata":{"resourceVersion":"30"},"items":[` + pod("huge", strings.Repeat("x", 200<<10), "29") + `]}`
		}
		return `{"metadata":{"resourceVersion":"10"},"items":[` + pod("a", "Running", "5") +
			`,{"metadata":{"name":"bad","namespace":"ns"},"status":{"phase":["not","a","string"]}},` + pod("c", "Pending", "7") + `]}`
	}}
	gone := `{"kind":"Status","code":410,"reason":"Expired","message":"too old"}`
	f.scripts = []func(http.ResponseWriter){func(w http.ResponseWriter) {
		mu.Lock()
		big = true
		mu.Unlock()
		events(ev("ERROR", gone))(w)
	}}
	rec, _, _ := start(t, f, 1000)
	rec.waitFor(t, "list", "upsert ns/a Running", "dropped undecodable", "upsert ns/c Pending", "listed",
		"failed expired=true", "list", "failed expired=false", "list", "failed expired=false")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	last := rec.failed[len(rec.failed)-1]
	if !strings.Contains(last.Error(), "larger than 1000 bytes") {
		t.Errorf("oversized list item: %v", last)
	}
}
