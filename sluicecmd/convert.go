package sluicecmd

import (
	"fmt"
	"io"

	"github.com/sluicehq/sluice/convert/statsdexporter"
)

// convertStatsdExporter prints the Sluice config equivalent to a
// statsd_exporter command line; each flag without an equivalent is a
// comment in the config and a warning on stderr.
func convertStatsdExporter(args []string, stdout, stderr io.Writer) int {
	res, err := statsdexporter.Convert(args)
	if err != nil {
		fmt.Fprintf(stderr, "sluice convert statsd_exporter: %v\n", err)
		return 1
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "sluice convert statsd_exporter: warning: %s\n", w)
	}
	_, _ = stdout.Write(res.HCL)
	return 0
}
