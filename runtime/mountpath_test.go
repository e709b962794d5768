package runtime_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime"
)

// A path ending in "/" mounts a subtree; overlapping mounts are refused.
func TestSubtreeMounts(t *testing.T) {
	f := newFixture(t, runtime.ControllerOptions{})
	m := runtime.NewMounts()
	srv := newServer(t, f, false, m)
	say := func(s string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s+" "+r.URL.Path) })
	}
	unmount, err := m.Mount("/push/a/", say("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Mount("/push/b", say("b")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/push/a/", "/push/a", "/push/a/api/x", "/push/", "/"} {
		if _, err := m.Mount(p, say("x")); err == nil || !strings.Contains(err.Error(), "already mounted") && p != "/" {
			t.Errorf("Mount(%q) overlapping /push/a/ or /push/b: err = %v", p, err)
		}
	}
	for path, want := range map[string]string{
		"/push/a/api/m/observe": "a /push/a/api/m/observe",
		"/push/a/":              "a /push/a/",
		"/push/b":               "b /push/b",
	} {
		if code, body := get(t, "GET", srv.URL+path); code != 200 || body != want {
			t.Errorf("GET %s = %d %q, want %q", path, code, body, want)
		}
	}
	for _, path := range []string{"/push/b/x", "/push/ab", "/push"} {
		if code, _ := get(t, "GET", srv.URL+path); code != 404 {
			t.Errorf("GET %s = %d, want 404", path, code)
		}
	}
	unmount()
	if code, _ := get(t, "GET", srv.URL+"/push/a/x"); code != 404 {
		t.Errorf("after unmount = %d, want 404", code)
	}
}

func TestPathsOverlap(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"/a", "/a", true}, {"/a/", "/a/b", true}, {"/a/", "/a", true}, {"/a/", "/a/b/", true},
		{"/a", "/a/b", false}, {"/a/", "/ab", false}, {"/a/b/", "/a/c", false},
	} {
		if got := runtime.PathsOverlap(c.a, c.b); got != c.want {
			t.Errorf("PathsOverlap(%q, %q) = %v", c.a, c.b, got)
		}
		if got := runtime.PathsOverlap(c.b, c.a); got != c.want {
			t.Errorf("PathsOverlap(%q, %q) = %v", c.b, c.a, got)
		}
	}
}
