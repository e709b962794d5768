// Command sluice is the Sluice metrics agent with every built-in component.
package main

import (
	"github.com/sluicehq/sluice/sluicecmd"

	_ "github.com/sluicehq/sluice/components/all" // every built-in component
)

func main() { sluicecmd.Main() }
