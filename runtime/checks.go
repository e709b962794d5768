package runtime

// Checks of a whole config, after every block decoded: conflicts between
// components that no single block can see.

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// checkHTTPPaths refuses two components that mount the same path on the
// agent's HTTP server (server.go), so the clash is a diagnostic instead of
// a component failing in Run.
func checkHTTPPaths(nodes []*loadedNode) hcl.Diagnostics {
	var diags hcl.Diagnostics
	type claim struct {
		path string
		n    *loadedNode
	}
	var owners []claim
	for _, n := range nodes {
		u, ok := argsAs[HTTPPathUser](n.args)
		if !ok {
			continue
		}
	paths:
		for _, path := range u.HTTPPaths(n.id) {
			for _, first := range owners {
				// A subtree path (ending in /) overlaps every path under it.
				if PathsOverlap(first.path, path) {
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "HTTP path used twice",
						Detail:   fmt.Sprintf("%s wants to serve %s, which overlaps %s that %s (at %s) already serves; give one of them another path.", n.id, path, first.path, first.n.id, first.n.rng),
						Subject:  n.rng.Ptr(),
					})
					continue paths
				}
			}
			owners = append(owners, claim{path, n})
		}
	}
	return diags
}
