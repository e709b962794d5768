package runtime

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// DiagnosticsError is a config that did not load.
//
// Render it only with Error: that is where secrets are redacted (see
// redact.go), for every consumer (sluice validate, the log, the reload
// API). Diags and Files hold the raw text and must not be printed directly.
type DiagnosticsError struct {
	Diags hcl.Diagnostics
	Files map[string]*hcl.File
	// Secrets are the ranges of attributes tagged secret, as found by the
	// parser: their lines are never printed.
	Secrets []hcl.Range
}

// Error renders every diagnostic as
//
//	file.hcl:3:5: Summary
//	  Detail.
//
//	      3 |   listen_udpp = ":9125"
//	        |   ^^^^^^^^^^^
//
// with secrets redacted: the values of secret-looking attributes in source
// lines, their literals in messages, URL userinfo and key-value passwords
// anywhere.
func (e *DiagnosticsError) Error() string {
	r := e.redactor()
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
		if d.Subject != nil {
			if f := e.Files[d.Subject.Filename]; f != nil {
				writeSnippet(&b, f.Bytes, *d.Subject, r.secrets[d.Subject.Filename].hideFrom)
			}
		}
	}
	return r.text(b.String())
}

// diagRedactor is what must be hidden when rendering e: the secret lines of
// every file and the secret literals written in them.
type diagRedactor struct {
	secrets  map[string]sourceSecrets
	literals []string
}

func (e *DiagnosticsError) redactor() diagRedactor {
	names := secretNames()
	r := diagRedactor{secrets: map[string]sourceSecrets{}}
	for name, f := range e.Files {
		if f == nil {
			continue
		}
		ss := findSourceSecrets(f.Bytes, names)
		for _, sr := range e.Secrets {
			if sr.Filename != name {
				continue
			}
			for l := sr.Start.Line; l <= sr.End.Line; l++ {
				if _, ok := ss.hideFrom[l]; !ok {
					ss.hideFrom[l] = 0
				}
			}
		}
		r.secrets[name] = ss
		r.literals = append(r.literals, ss.literals...)
	}
	return r
}

// text redacts a rendered message.
func (r diagRedactor) text(s string) string {
	return RedactText(redactLiterals(s, r.literals))
}

// writeSnippet prints the subject's first line with the range underlined;
// from a secret value's start on, the line shows <redacted>.
func writeSnippet(b *strings.Builder, src []byte, r hcl.Range, hideFrom map[int]int) {
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for line := 1; sc.Scan(); line++ {
		if line != r.Start.Line {
			continue
		}
		raw := sc.Text()
		if from, ok := hideFrom[line]; ok {
			from = min(from, len(raw))
			sep := ""
			if from > 0 {
				sep = " "
			}
			raw = raw[:from] + sep + redactedMark
		}
		text := strings.ReplaceAll(raw, "\t", " ")
		start := min(max(r.Start.Column-1, 0), len(text))
		end := len(text)
		if r.End.Line == r.Start.Line {
			end = min(max(r.End.Column-1, start+1), len(text))
		}
		start = min(start, max(end-1, 0))
		width := max(end-start, 1)
		fmt.Fprintf(b, "\n\n  %4d | %s\n       | %s%s", line, text, strings.Repeat(" ", start), strings.Repeat("^", width))
		return
	}
}
