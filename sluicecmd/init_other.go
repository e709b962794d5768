//go:build !linux

package sluicecmd

import "io"

// runAsInit is Linux only (see init_linux.go): elsewhere Sluice is not run
// as PID 1 of a container.
func runAsInit([]string, io.Writer) (int, bool) { return 0, false }
