package sluicecmd

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWebPaths(t *testing.T) {
	for _, tc := range []struct {
		ext, prefix      string
		wantBase, wantRP string
	}{
		{"", "", "/", "/"},
		{"http://proxy.example/sluice/", "", "/sluice", "/sluice"},
		{"https://proxy.example/a/b", "", "/a/b", "/a/b"},
		{"https://proxy.example/sluice/", "/", "/sluice", "/"}, // the proxy strips the prefix
		{"", "/internal/", "/", "/internal"},
		{"", "internal", "/", "/internal"},
	} {
		base, rp, err := webPaths(tc.ext, tc.prefix)
		if err != nil || base != tc.wantBase || rp != tc.wantRP {
			t.Errorf("webPaths(%q, %q) = %q, %q, %v; want %q, %q", tc.ext, tc.prefix, base, rp, err, tc.wantBase, tc.wantRP)
		}
	}
	for _, bad := range []string{"proxy.example/sluice", "ftp://x/y", "http://", "http://x/y?a=b", "http://x/#f", "http://[::1"} {
		if _, _, err := webPaths(bad, ""); err == nil || !strings.Contains(err.Error(), "--web.external-url") {
			t.Errorf("webPaths(%q) = %v, want an error naming the flag", bad, err)
		}
	}
}

func TestWithRoutePrefix(t *testing.T) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("inner:" + r.URL.Path)) })
	h := withRoutePrefix("/sluice", inner)
	for _, tc := range []struct {
		path     string
		code     int
		body     string
		location string
	}{
		{"/sluice/", 200, "inner:/", ""},
		{"/sluice/-/healthy", 200, "inner:/-/healthy", ""},
		{"/sluice/metrics/default", 200, "inner:/metrics/default", ""},
		{"/sluice", 302, "", "/sluice/"},
		{"/", 302, "", "/sluice/"},
		{"/-/healthy", 404, "", ""},
		{"/metrics", 404, "", ""},
		{"/sluicex/", 404, "", ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.code || (tc.body != "" && rec.Body.String() != tc.body) || rec.Header().Get("Location") != tc.location {
			t.Errorf("GET %s: %d %q Location %q; want %d %q %q", tc.path, rec.Code, rec.Body.String(), rec.Header().Get("Location"), tc.code, tc.body, tc.location)
		}
	}
	if withRoutePrefix("/", inner) == nil {
		t.Fatal("nil handler")
	}
}

func FuzzWebPaths(f *testing.F) {
	for _, s := range []string{"", "http://proxy.example/sluice/", "https://x/a/b", "ftp://x", "http://[::1", "http://x/%2F/"} {
		f.Add(s, "")
		f.Add(s, "/p/")
	}
	f.Fuzz(func(t *testing.T, ext, prefix string) {
		base, rp, err := webPaths(ext, prefix)
		if err != nil {
			return
		}
		if !strings.HasPrefix(base, "/") || !strings.HasPrefix(rp, "/") || (len(rp) > 1 && strings.HasSuffix(rp, "/")) {
			t.Fatalf("webPaths(%q, %q) = %q, %q", ext, prefix, base, rp)
		}
		// Whatever the prefix, building the handler must not panic and the
		// prefix itself must reach the inner handler.
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("withRoutePrefix(%q) panicked: %v", rp, r)
			}
		}()
		h := withRoutePrefix(rp, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) }))
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path = strings.TrimSuffix(rp, "/") + "/x"
		h.ServeHTTP(rec, req)
		if rec.Code != 299 {
			t.Fatalf("prefix %q: GET %s answered %d, not by the inner handler", rp, req.URL.Path, rec.Code)
		}
	})
}
