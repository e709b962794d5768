package sluicecmd

import (
	"fmt"
	"io"

	"github.com/sluicehq/sluice/pipeline"
)

func validate(path string, opts pipeline.LoadOptions, webConfigFile string, stdout, stderr io.Writer) int {
	if err := pipeline.ValidateWebConfig(webConfigFile); err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	src, err := pipeline.ReadConfigFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	// The rendered diagnostics are redacted (pipeline.DiagnosticsError).
	if err := pipeline.ValidateWith(path, src, pipeline.ValidateOptions{LoadOptions: opts}); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: valid\n", path)
	return 0
}
