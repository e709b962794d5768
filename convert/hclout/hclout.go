// Package hclout writes the HCL that `sluice convert` prints: lines,
// attributes and comments, indented by block and put in canonical format
// (sluice fmt) at the end, with string literals that HCL reads back
// unchanged.
package hclout

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"

	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Writer accumulates HCL text.
type Writer struct {
	buf   bytes.Buffer
	depth int
}

// Line writes one line; a line ending in "{" opens a block, one starting
// with "}" closes it.
func (w *Writer) Line(s string) {
	if strings.HasPrefix(s, "}") {
		w.depth--
	}
	if s != "" {
		w.buf.WriteString(strings.Repeat("  ", w.depth))
	}
	w.buf.WriteString(s)
	w.buf.WriteByte('\n')
	if strings.HasSuffix(s, "{") {
		w.depth++
	}
}

// Attr writes name = value; value is HCL as is (see Quote).
func (w *Writer) Attr(name, value string) { w.Line(name + " = " + value) }

// Comment writes text as # lines, one per line of text, so that a newline
// in text (from a file or a flag) cannot end the comment early.
func (w *Writer) Comment(text string) {
	for _, l := range strings.Split(text, "\n") {
		w.Line(strings.TrimRight("# "+strings.ReplaceAll(l, "\r", ""), " "))
	}
}

// Raw writes text without indentation (a heredoc's body).
func (w *Writer) Raw(text string) { w.buf.WriteString(text) }

// Bytes returns the text in canonical format.
func (w *Writer) Bytes() []byte { return hclwrite.Format(w.buf.Bytes()) }

// Quote returns s as an HCL string literal, with the escapes HCL knows
// (\n, \r, \t, \", \\, \uNNNN; Go's \x, \a, \v... are not HCL) and
// the template sequences ${ and %{ escaped so that they stay literal.
// Invalid UTF-8 cannot be written in HCL: each bad byte becomes U+FFFD
// (the converters refuse such input before it gets here).
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r > 0xffff && !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\U%08x`, r)
		case r < 0x20 || r == 0x7f || !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return EscapeTemplate(b.String())
}

// EscapeTemplate escapes ${ and %{, which HCL strings and heredocs read as
// interpolations and directives.
func EscapeTemplate(s string) string {
	s = strings.ReplaceAll(s, "${", "$${")
	return strings.ReplaceAll(s, "%{", "%%{")
}

// QuoteList returns ss as an HCL list of strings.
func QuoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
