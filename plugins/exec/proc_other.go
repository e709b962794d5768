//go:build !unix

package exec

import osexec "os/exec"

// setProcessGroup leaves the default on systems without process groups:
// cancellation kills the command's process only.
func setProcessGroup(*osexec.Cmd) {}
