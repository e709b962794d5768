package pipeline

import (
	"sort"
	"strings"
)

// RedactedMark replaces a secret in everything Sluice prints.
const RedactedMark = "<redacted>"

// MinSecretLen is the length under which a secret value is not redacted:
// shorter ones would mangle ordinary words, and a 1- or 2-character
// password is not worth protecting at that price.
const MinSecretLen = 3

// SecretRedactor removes known secret values (a component's secret
// arguments, resolved) from text a component logs or reports: output of a
// program it runs, an error that echoes what it was given. The runtime's
// redaction of diagnostics works on what the config says; this works on
// the values themselves, wherever they end up. The zero value redacts
// nothing.
type SecretRedactor struct {
	secrets  []string // longest first, so a secret containing another goes whole
	replacer *strings.Replacer
}

// NewSecretRedactor redacts each of values of at least MinSecretLen bytes.
func NewSecretRedactor(values ...string) SecretRedactor {
	var r SecretRedactor
	seen := map[string]bool{}
	for _, v := range values {
		if len(v) >= MinSecretLen && !seen[v] {
			seen[v] = true
			r.secrets = append(r.secrets, v)
		}
	}
	if len(r.secrets) == 0 {
		return r
	}
	sort.SliceStable(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	pairs := make([]string, 0, 2*len(r.secrets))
	for _, s := range r.secrets {
		pairs = append(pairs, s, RedactedMark)
	}
	// A Replacer tries its pairs in order at each position: longest first.
	r.replacer = strings.NewReplacer(pairs...)
	return r
}

// Redact returns s with every secret replaced by <redacted>.
func (r SecretRedactor) Redact(s string) string {
	if r.replacer == nil {
		return s
	}
	return r.replacer.Replace(s)
}

// RedactCut is Redact for text cut at a size bound: a secret the cut split
// leaves its first bytes at the end, which are redacted too.
func (r SecretRedactor) RedactCut(s string) string {
	// The longest end of s that begins some secret, found before Redact
	// replaces a shorter secret inside it.
	cut := 0
	for _, sec := range r.secrets {
		for n := min(len(sec)-1, len(s)); n > cut; n-- {
			if strings.HasSuffix(s, sec[:n]) {
				cut = n
				break
			}
		}
	}
	if cut == 0 {
		return r.Redact(s)
	}
	return r.Redact(s[:len(s)-cut]) + RedactedMark
}
