package sluicecmd

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/sluicehq/sluice/runtime"
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
			// Rendered by the pipeline, which redacts secrets in the
			// source lines it shows.
			fmt.Fprintln(stderr, &runtime.DiagnosticsError{Diags: diags, Files: p.Files()})
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
			if err := writeAtomically(path, out, info.Mode().Perm()); err != nil {
				fmt.Fprintf(stderr, "sluice fmt: %v\n", err)
				code = 1
			}
		default:
			_, _ = stdout.Write(out)
		}
	}
	return code
}

// writeAtomically replaces path with data through a temporary file and a
// rename, so that a running agent watching the file never reads half of it.
func writeAtomically(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
