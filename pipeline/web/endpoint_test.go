package web_test

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/web"
)

func TestEndpointSpecMovesAndRewebs(t *testing.T) {
	own := web.EndpointSpec{Listen: ":1", MountPath: "/x", WebConfigFile: "a.yml"}
	mount := web.EndpointSpec{MountPath: "/x", WebConfigFile: "a.yml"}
	for _, tc := range []struct {
		name          string
		cur, next     web.EndpointSpec
		moves, rewebs bool
	}{
		{"same own listener", own, own, false, false},
		{"own listener, path ignored", own, web.EndpointSpec{Listen: ":1", MountPath: "/y", WebConfigFile: "a.yml"}, false, false},
		{"own listener, another web config", own, web.EndpointSpec{Listen: ":1", WebConfigFile: "b.yml"}, false, true},
		{"another address", own, web.EndpointSpec{Listen: ":2", WebConfigFile: "a.yml"}, true, false},
		{"listener to mount", own, mount, true, false},
		{"same mount, web config ignored", mount, web.EndpointSpec{MountPath: "/x", WebConfigFile: "b.yml"}, false, false},
		{"another path", mount, web.EndpointSpec{MountPath: "/y"}, true, false},
	} {
		if got := tc.cur.Moves(tc.next); got != tc.moves {
			t.Errorf("%s: Moves = %v, want %v", tc.name, got, tc.moves)
		}
		if got := tc.cur.Rewebs(tc.next); got != tc.rewebs {
			t.Errorf("%s: Rewebs = %v, want %v", tc.name, got, tc.rewebs)
		}
	}
}

func say(s string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s) })
}

// oneMount is an HTTPMounter with room for one handler.
type oneMount struct {
	path string
	h    http.Handler
}

func (m *oneMount) Mount(path string, h http.Handler) (func(), error) {
	m.path, m.h = path, h
	return func() { m.h = nil }, nil
}

func (m *oneMount) get(path string) (int, string) {
	if m.h == nil || path != m.path {
		return 404, ""
	}
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String()
}

// A mount answers 404 until Start, then serves; Stop unmounts it.
func TestEndpointMountServesAfterStart(t *testing.T) {
	m := &oneMount{}
	e, err := web.AcquireEndpoint(web.EndpointSpec{MountPath: "/x"}, m, say("x"))
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := m.get("/x"); code != 404 {
		t.Fatalf("before Start: %d, want 404", code)
	}
	e.Start(slog.New(slog.DiscardHandler), "x")
	if code, body := m.get("/x"); code != 200 || body != "x" {
		t.Fatalf("after Start: %d %q", code, body)
	}
	if e.Addr() != "" {
		t.Fatalf("a mount has no address: %q", e.Addr())
	}
	e.Stop()
	if code, _ := m.get("/x"); code != 404 {
		t.Fatalf("after Stop: %d, want 404", code)
	}
	if _, err := web.AcquireEndpoint(web.EndpointSpec{MountPath: "/x"}, nil, say("x")); err == nil || !strings.Contains(err.Error(), "set listen") {
		t.Fatalf("mount without an agent server: %v", err)
	}
}

// CommitEndpoint: a prepared endpoint replaces the current one; a move
// that fails to bind keeps the current one serving; a new web config
// file restarts the server on the same address; a component that is not
// running releases what was prepared.
func TestCommitEndpoint(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	spec := func(addr string) web.EndpointSpec { return web.EndpointSpec{Listen: addr} }
	fetch := func(addr string) string {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	cur, err := web.AcquireEndpoint(spec("127.0.0.1:0"), nil, say("one"))
	if err != nil {
		t.Fatal(err)
	}
	cur.Start(logger, "test")
	curSpec := spec(cur.Addr())
	if got := fetch(cur.Addr()); got != "one" {
		t.Fatalf("current endpoint: %q", got)
	}

	// Prepared by Update (running, moved): starts, the current retires.
	fresh, err := web.AcquireEndpoint(spec("127.0.0.1:0"), nil, say("two"))
	if err != nil {
		t.Fatal(err)
	}
	serve, retire := web.CommitEndpoint(true, cur, fresh, curSpec, spec("127.0.0.1:0"), nil, logger, "test")
	if serve != fresh || retire != cur {
		t.Fatal("the prepared endpoint did not replace the current one")
	}
	retire.Stop()
	if got := fetch(serve.Addr()); got != "two" {
		t.Fatalf("new endpoint: %q", got)
	}
	cur, curSpec = serve, spec(serve.Addr())

	// A move whose bind fails (the address is taken): the current serves on.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	next := spec(taken.Addr().String())
	serve, retire = web.CommitEndpoint(true, cur, nil, curSpec, next, func() (*web.Endpoint, error) {
		return web.AcquireEndpoint(next, nil, say("three"))
	}, logger, "test")
	if serve != cur || retire != nil || fetch(cur.Addr()) != "two" {
		t.Fatal("a failed move did not keep the current endpoint serving")
	}

	// Another web config file on the same address: restarted there.
	rewebbed := web.EndpointSpec{Listen: cur.Addr(), WebConfigFile: ""}
	curSpec.WebConfigFile = "old.yml" // as if the old server had one
	serve, retire = web.CommitEndpoint(true, cur, nil, curSpec, rewebbed, func() (*web.Endpoint, error) {
		return web.AcquireEndpoint(rewebbed, nil, say("four"))
	}, logger, "test")
	if serve == nil || serve == cur || retire != nil || serve.Addr() != rewebbed.Listen || fetch(serve.Addr()) != "four" {
		t.Fatalf("not restarted on %s with the new file", rewebbed.Listen)
	}

	// Not running: the prepared endpoint is released, nothing changes.
	prepared, err := web.AcquireEndpoint(spec("127.0.0.1:0"), nil, say("five"))
	if err != nil {
		t.Fatal(err)
	}
	got, gone := web.CommitEndpoint(false, serve, prepared, rewebbed, spec("127.0.0.1:0"), nil, logger, "test")
	if got != serve || gone != nil {
		t.Fatal("a component that is not running changed its endpoint")
	}
	serve.Stop()
}
