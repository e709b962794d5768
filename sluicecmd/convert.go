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
	return printConversion("statsd_exporter", res.HCL, res.Warnings, err, stdout, stderr)
}

// convertPostgresExporter prints the postgres_source equivalent to a
// postgres_exporter queries file and collector choice; what cannot be
// expressed is a comment in the config and a warning on stderr.
func convertPostgresExporter(o postgresexporter.Options, stdout, stderr io.Writer) int {
	src, err := os.ReadFile(o.QueriesPath)
	if err != nil {
		return printConversion("postgres_exporter", nil, nil, err, stdout, stderr)
	}
	o.Queries = src
	res, err := postgresexporter.Convert(o)
	return printConversion("postgres_exporter", res.HCL, res.Warnings, err, stdout, stderr)
}

// printConversion writes the config to stdout and the warnings to stderr,
// or the error alone; it returns the exit code.
func printConversion(from string, hcl []byte, warnings []string, err error, stdout, stderr io.Writer) int {
	if err != nil {
		fmt.Fprintf(stderr, "sluice convert %s: %v\n", from, err)
		return 1
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "sluice convert %s: warning: %s\n", from, w)
	}
	_, _ = stdout.Write(hcl)
	return 0
}
