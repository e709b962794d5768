package sluicecmd

import (
	"fmt"
	"io"
	"os"

	"github.com/sluicehq/sluice/convert/postgresexporter"
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

// convertPostgresExporter prints the postgres_source equivalent to a
// postgres_exporter queries file and collector choice; what cannot be
// expressed is a comment in the config and a warning on stderr.
func convertPostgresExporter(o postgresexporter.Options, stdout, stderr io.Writer) int {
	src, err := os.ReadFile(o.QueriesPath)
	if err != nil {
		fmt.Fprintf(stderr, "sluice convert postgres_exporter: %v\n", err)
		return 1
	}
	o.Queries = src
	res, err := postgresexporter.Convert(o)
	if err != nil {
		fmt.Fprintf(stderr, "sluice convert postgres_exporter: %v\n", err)
		return 1
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "sluice convert postgres_exporter: warning: %s\n", w)
	}
	_, _ = stdout.Write(res.HCL)
	return 0
}
