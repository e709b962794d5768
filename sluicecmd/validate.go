package sluicecmd

import (
	"fmt"
	"io"
	"os"

	"github.com/sluicehq/sluice/pipeline"
)

func validate(path string, stdout, stderr io.Writer) int {
	src, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	if err := pipeline.Validate(path, src, nil); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: valid\n", path)
	return 0
}
