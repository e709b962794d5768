package runtime

import "strings"

// Subtree mounts.
//
// A mount path ending in "/" (e.g. "/push/delivery/") is a subtree: it
// serves that path and every path below it ("/push/delivery/api/x/observe"),
// as in net/http.ServeMux. Any other path is exact. An exact mount wins over
// a subtree containing it, and a longer subtree over a shorter one, but the
// loader (checks.go) and Mounts.Mount refuse overlapping paths of two
// components in the first place, so in practice at most one mount matches.
// Subtree paths are also what HTTPPathUser.HTTPPaths returns for them, so
// the load-time check sees the overlap.

// IsSubtreePath reports whether a mount path is a subtree (ends in "/").
func IsSubtreePath(path string) bool { return strings.HasSuffix(path, "/") }

// PathsOverlap reports whether two mount paths can serve the same request
// path: equal paths, a subtree and a path under it, or two nested subtrees.
// The subtree "/a/" also covers "/a" itself (which ServeMux would redirect).
func PathsOverlap(a, b string) bool {
	if a == b {
		return true
	}
	return pathInSubtree(a, b) || pathInSubtree(b, a)
}

// pathInSubtree reports whether subtree s (if it is one) covers path p.
func pathInSubtree(p, s string) bool {
	if !IsSubtreePath(s) {
		return false
	}
	return strings.HasPrefix(p, s) || p == strings.TrimSuffix(s, "/")
}

// matchMount finds the mount for a request path: the exact one, else the
// longest subtree covering it.
func matchMount[V any](m map[string]V, path string) (V, bool) {
	if v, ok := m[path]; ok {
		return v, true
	}
	best, found := "", false
	for p := range m {
		if pathInSubtree(path, p) && len(p) > len(best) {
			best, found = p, true
		}
	}
	return m[best], found
}
