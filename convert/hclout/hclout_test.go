package hclout

import (
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"golang.org/x/text/unicode/norm"
)

// FuzzQuote: HCL reads Quote(s) back as s (in normal form C, as HCL
// normalizes every string), for any valid UTF-8 s
// (control characters, quotes, backslashes, template sequences).
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "${x} %{y} $${z}", "\x00\a\b\f\v\x7f", "tab\there\nnew\rline", "\u2028\U0001F600\U000E0001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		q := Quote(s)
		expr, diags := hclsyntax.ParseExpression([]byte(q), "q.hcl", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatalf("Quote(%q) = %s does not parse: %v", s, q, diags)
		}
		v, diags := expr.Value(nil)
		if diags.HasErrors() {
			t.Fatalf("Quote(%q) = %s does not evaluate: %v", s, q, diags)
		}
		// HCL puts every string literal in Unicode normal form C.
		if got, want := v.AsString(), norm.NFC.String(s); got != want {
			t.Fatalf("Quote(%q) = %s reads back as %q, want %q", s, q, got, want)
		}
	})
}
