// Command sluice is the Sluice metrics agent with every built-in component:
// the full distribution (cmd/sluice-lite is the lean one).
package main

import (
	"github.com/sluicehq/sluice/sluicecmd"

	_ "github.com/sluicehq/sluice/components/all" // every built-in component
)

func main() { sluicecmd.MainDistribution(sluicecmd.DistributionFull) }
