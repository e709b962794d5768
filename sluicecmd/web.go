package sluicecmd

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/sluicehq/sluice/runtime"
	"github.com/sluicehq/sluice/runtime/ui"
)

// webPaths resolves --web.external-url and --web.route-prefix as Prometheus
// does: the route prefix (where the agent serves everything) defaults to
// the path of the external URL (where users reach it), and links in the UI
// start with the external URL's path, so the agent can sit behind a proxy
// that strips a prefix or one that does not. Both are returned as "/" or
// "/a/b" (no trailing slash).
func webPaths(externalURL, routePrefix string) (base, prefix string, err error) {
	base = "/"
	if externalURL != "" {
		u, err := url.Parse(externalURL)
		if err != nil {
			return "", "", fmt.Errorf("--web.external-url: %w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", "", fmt.Errorf("--web.external-url %q: want an absolute http or https URL, such as https://example.com/sluice/", externalURL)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return "", "", fmt.Errorf("--web.external-url %q: must not have a query or fragment", externalURL)
		}
		base = "/" + strings.Trim(u.Path, "/")
	}
	prefix = base
	if routePrefix != "" {
		prefix = "/" + strings.Trim(routePrefix, "/")
	}
	return base, prefix, nil
}

// withRoutePrefix serves h under prefix, as Prometheus does with
// --web.route-prefix: every endpoint (/-/healthy, /metrics, the sinks'
// paths, the UI) moves under the prefix; GET / redirects to it and any
// other path outside it is 404.
func withRoutePrefix(prefix string, h http.Handler) http.Handler {
	if prefix == "/" || prefix == "" {
		return refuseUncleanPaths(h)
	}
	// Not a ServeMux: the prefix is user input, and a pattern would read
	// "{", or a space, as syntax.
	strip := http.StripPrefix(prefix, h)
	return refuseUncleanPaths(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, prefix+"/"):
			strip.ServeHTTP(w, r)
		case p == prefix || (p == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead)):
			http.Redirect(w, r, prefix+"/", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
}

// refuseUncleanPaths answers 404 to a path with empty or dot segments
// ("//", "/./", "/../"). Below a route prefix, net/http's ServeMux would
// redirect such a path to its clean form computed without the prefix
// (/sluice//-/healthy to /-/healthy: out of the prefix), and a proxy that
// guards paths by prefix could be walked around by one. Nothing the agent
// links to is unclean.
func refuseUncleanPaths(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p != "" && cleanPath(p) != p {
			http.Error(w, "404 page not found: the path has empty or dot segments", http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// cleanPath is path.Clean keeping a trailing slash.
func cleanPath(p string) string {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// newStatusUI returns the status UI, whose links start with base.
func newStatusUI(ctrl *runtime.Controller, base, distribution string, started time.Time, logger *slog.Logger) (http.Handler, error) {
	h, err := ui.New(ui.Options{Controller: ctrl, Base: strings.TrimSuffix(base, "/") + "/", Distribution: distribution, Started: started, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("status UI: %w", err)
	}
	return h, nil
}

// trustedOrigins is the origin of --web.external-url, if set: browsers
// reach the agent there, and a proxy in between may rewrite Host, so that
// Origin alone would not match.
func trustedOrigins(externalURL string) []string {
	u, err := url.Parse(externalURL)
	if externalURL == "" || err != nil || u.Scheme == "" || u.Host == "" {
		return nil
	}
	return []string{u.Scheme + "://" + u.Host}
}
