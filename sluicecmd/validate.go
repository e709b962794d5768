package sluicecmd

import (
	"fmt"
	"io"

	"github.com/sluicehq/sluice/pipeline/web"
	"github.com/sluicehq/sluice/runtime"
)

func validate(path string, opts runtime.LoadOptions, webConfigFile string, stdout, stderr io.Writer) int {
	if err := web.ValidateWebConfig(webConfigFile); err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	src, err := runtime.ReadConfigFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	// The rendered diagnostics are redacted (runtime.DiagnosticsError).
	if err := runtime.ValidateWith(path, src, runtime.ValidateOptions{LoadOptions: opts}); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: valid\n", path)
	return 0
}
