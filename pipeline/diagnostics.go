package pipeline

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// DiagnosticsError is a config that did not load.
type DiagnosticsError struct {
	Diags hcl.Diagnostics
	Files map[string]*hcl.File
	// Secrets are the ranges of secret attributes: lines that must never
	// be printed.
	Secrets []hcl.Range
}

// Error renders every diagnostic as
//
//	file.hcl:3:5: Summary
//	  Detail.
//
//	      3 |   listen_udpp = ":9125"
//	        |   ^^^^^^^^^^^
func (e *DiagnosticsError) Error() string {
	var b strings.Builder
	for i, d := range e.Diags {
		if i > 0 {
			b.WriteString("\n\n")
		}
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s:%d:%d: %s: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, sev, d.Summary)
		} else {
			fmt.Fprintf(&b, "%s: %s", sev, d.Summary)
		}
		if d.Detail != "" {
			b.WriteString("\n  " + strings.ReplaceAll(d.Detail, "\n", "\n  "))
		}
		if d.Subject != nil && !e.secretLine(*d.Subject) {
			if f := e.Files[d.Subject.Filename]; f != nil {
				writeSnippet(&b, f.Bytes, *d.Subject)
			}
		}
	}
	return b.String()
}

// writeSnippet prints the subject's first line with the range underlined.
func writeSnippet(b *strings.Builder, src []byte, r hcl.Range) {
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for line := 1; sc.Scan(); line++ {
		if line != r.Start.Line {
			continue
		}
		text := strings.ReplaceAll(sc.Text(), "\t", " ")
		start := min(max(r.Start.Column-1, 0), len(text))
		end := len(text)
		if r.End.Line == r.Start.Line {
			end = min(max(r.End.Column-1, start+1), len(text))
		}
		width := max(end-start, 1)
		fmt.Fprintf(b, "\n\n  %4d | %s\n       | %s%s", line, text, strings.Repeat(" ", start), strings.Repeat("^", width))
		return
	}
}

// secretLine reports whether the snippet of r (its first line) would show
// part of a secret attribute.
func (e *DiagnosticsError) secretLine(r hcl.Range) bool {
	for _, s := range e.Secrets {
		if s.Filename == r.Filename && r.Start.Line >= s.Start.Line && r.Start.Line <= s.End.Line {
			return true
		}
	}
	return false
}
