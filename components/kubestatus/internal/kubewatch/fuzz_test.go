package kubewatch

import (
	"bytes"
	"testing"
)

// FuzzEvents feeds arbitrary bytes as a watch stream: no panic, every line
// is either applied, skipped and counted, or ends the watch with an
// error; memory stays bounded by MaxObjectBytes per line.
func FuzzEvents(f *testing.F) {
	f.Add([]byte(ev("ADDED", pod("a", "Running", "1"))))
	f.Add([]byte(ev("DELETED", pod("a", "Running", "2")) + "garbage\n" + ev("BOOKMARK", `{"metadata":{"resourceVersion":"3"}}`)))
	f.Add([]byte(ev("ERROR", `{"kind":"Status","code":410,"reason":"Expired"}`)))
	f.Add([]byte(`{"type":"ADDED","object":{"metadata":{"name":1}}}` + "\n"))
	f.Add([]byte(`{"type":"MODIFIED","object":{"status":{"phase":"` + string(bytes.Repeat([]byte("x"), 3000)) + `"}}}`))
	f.Fuzz(func(t *testing.T, stream []byte) {
		if len(stream) > 1<<20 {
			return
		}
		rec := newRecorder()
		rec.changed = make(chan struct{}, 1)
		w := &Watch{New: func() Object { return new(testObj) }, Handler: rec, MaxObjectBytes: 1024}
		rv := "0"
		_ = w.events(bytes.NewReader(stream), &rv)
		lines := bytes.Count(stream, []byte("\n")) + 1
		if n := len(rec.snapshot()); n > lines {
			t.Fatalf("%d handler calls for %d lines", n, lines)
		}
	})
}

// FuzzList feeds arbitrary bytes as a list answer: no panic, a clear
// error or items handed over one by one.
func FuzzList(f *testing.F) {
	f.Add([]byte(twoPages("")))
	f.Add([]byte(`{"metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"a"},"status":{"phase":1}}]}`))
	f.Add([]byte(`{"items":[`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 1<<20 {
			return
		}
		rec := newRecorder()
		rec.changed = make(chan struct{}, 1)
		w := &Watch{New: func() Object { return new(testObj) }, Handler: rec, MaxObjectBytes: 1024}
		rv, _, err := w.decodeList(bytes.NewReader(body))
		if err == nil && rv == "" {
			t.Fatal("a list without a resource version accepted")
		}
	})
}
