package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// formatFiles prints, writes (-w) or checks (--check) the canonical form of
// each file. A file with syntax errors is reported and left alone.
func formatFiles(paths []string, write, check bool, stdout, stderr io.Writer) int {
	code := 0
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stderr, "sluice fmt: %v\n", err)
			code = 1
			continue
		}
		p := hclparse.NewParser()
		if _, diags := p.ParseHCL(src, path); diags.HasErrors() {
			w := hcl.NewDiagnosticTextWriter(stderr, p.Files(), 0, false)
			_ = w.WriteDiagnostics(diags)
			code = 1
			continue
		}
		out := hclwrite.Format(src)
		switch {
		case check:
			if !bytes.Equal(src, out) {
				fmt.Fprintln(stdout, path)
				code = 1
			}
		case write:
			if bytes.Equal(src, out) {
				continue
			}
			info, err := os.Stat(path)
			if err != nil {
				fmt.Fprintf(stderr, "sluice fmt: %v\n", err)
				code = 1
				continue
			}
			if err := os.WriteFile(path, out, info.Mode().Perm()); err != nil {
				fmt.Fprintf(stderr, "sluice fmt: %v\n", err)
				code = 1
			}
		default:
			_, _ = stdout.Write(out)
		}
	}
	return code
}
