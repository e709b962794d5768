//go:build !linux

package sluicecmd

// releaseExecutablePages does nothing but on Linux (see startpages.go).
func releaseExecutablePages() (int64, error) { return 0, nil }
