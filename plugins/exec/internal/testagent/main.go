// Command testagent is sluice with exec_source and no other component: the
// tests build it to run exec_source through the real binary (as PID 1 of a
// PID namespace, pid1_test.go) without building every built-in component.
package main

import (
	"github.com/sluicehq/sluice/sluicecmd"

	_ "github.com/sluicehq/sluice/plugins/exec"
)

func main() { sluicecmd.Main() }
