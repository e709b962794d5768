package runtime

// Redaction of secrets from everything Sluice prints about a config: the
// rendered diagnostics (sluice validate, the reload log, the body of a
// rejected POST /-/reload) and error texts. Diagnostics are rendered in one
// place, DiagnosticsError.Error, and that is where all of this applies, so
// no caller can forget it.
//
// Three rules, each catching what the others cannot:
//
//  1. Secret-looking attributes, found in the raw source so that they are
//     found even when the file does not parse or the name is misspelled: the
//     value of any attribute or object key whose name looks like a secret
//     (see isSecretName) is never printed in a source snippet, and the string
//     literals in that value are removed from every message.
//  2. URL userinfo: in any text, everything between "://" and the last "@"
//     of the same whitespace-delimited word becomes <redacted>, whatever the
//     attribute (a misspelled or unknown one, a function argument echoed in
//     an error message).
//  3. Key-value connection strings: the value of password=... (libpq style)
//     becomes <redacted>.

import (
	"reflect"
	"regexp"
	"strings"
	"sync"
	"unicode"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
)

// redactedMark replaces a secret in printed text.
const redactedMark = pipeline.RedactedMark

// The patterns are compiled on first use, not at program start: redaction
// runs when a diagnostic or an error is printed, and every binary (the lite
// one included) would otherwise compile them at init.
var (
	// userinfoRE is "://" and the rest of the word up to its last "@":
	// "postgres://u:p@ss@h/db" loses "u:p@ss". Greedy on purpose, so a
	// password containing "@", "/" or ":" is covered whole.
	userinfoRE = lazyRegexp(`://\S*@`)
	// kvPasswordRE is a libpq-style password=VALUE (quoted or not).
	kvPasswordRE = lazyRegexp(`(?i)\b(password|passwd|pwd)(\s*=\s*)('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[^\s"',;]+)`)
	// keyRE finds an attribute or object key: NAME = or NAME : (quoted
	// object keys included).
	keyRE = lazyRegexp(`"?([A-Za-z_][A-Za-z0-9_-]*)"?\s*([=:])`)
	// heredocRE opens a heredoc: <<EOT or <<-EOT.
	heredocRE = lazyRegexp(`<<-?([A-Za-z_][A-Za-z0-9_-]*)`)
	// envNameRE is what precedes the name argument of env(): a quoted
	// string right after it is a variable's name.
	envNameRE = lazyRegexp(`\benv\s*\(\s*$`)
	// quotedRE is a double-quoted HCL string.
	quotedRE = lazyRegexp(`"((?:[^"\\]|\\.)*)"`)
)

// lazyRegexp compiles expr once, on the first call of the function it
// returns.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// RedactText removes URL userinfo and key-value passwords from s. It is
// applied to every rendered diagnostic and to error texts the agent logs or
// serves.
func RedactText(s string) string {
	if strings.Contains(s, "://") {
		s = userinfoRE().ReplaceAllLiteralString(s, "://"+redactedMark+"@")
	}
	if strings.ContainsAny(s, "=") {
		s = kvPasswordRE().ReplaceAllString(s, "${1}${2}"+redactedMark)
	}
	return s
}

// secretWords are names that hold secrets in any component, registered or
// not: the rule must also catch a misspelled attribute of a component whose
// schema does not say so.
func secretWords() []string {
	return []string{"password", "passwd", "secret", "token", "dsn", "api_key", "apikey", "credentials", "private_key"}
}

// secretNames returns the secret words and the names of every attribute
// tagged secret:"true" by a registered component (nested blocks included).
func secretNames() []string {
	seen := map[string]bool{}
	var out []string
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, w := range secretWords() {
		add(w)
	}
	var walk func(t reflect.Type, depth int)
	walk = func(t reflect.Type, depth int) {
		if depth > 8 {
			return
		}
		fields, _ := schema.Fields(t)
		for _, f := range fields {
			switch {
			case f.Kind == schema.KindAttr && f.Secret:
				add(f.Name)
			case f.Kind == schema.KindBlock:
				walk(schema.BlockElem(f.Type), depth+1)
			}
		}
	}
	for _, r := range pipeline.Registrations() {
		walk(r.ArgsType(), 0)
	}
	return out
}

// isSecretName reports whether an attribute named name should be treated as
// a secret: it contains one of names (db_password, auth_token), or is within
// a small edit distance of one (dsnn, pasword, tokne): 1 edit for names of
// up to 4 letters, 2 for longer ones, a transposition counting as one edit.
// A false positive only hides a snippet line; a false negative prints a
// password.
func isSecretName(name string, names []string) bool {
	n := strings.ToLower(strings.ReplaceAll(name, "-", "_"))
	for _, s := range names {
		if strings.Contains(n, s) {
			return true
		}
		limit := 2
		if len(s) <= 4 {
			limit = 1
		}
		if abs(len(n)-len(s)) <= limit && osaDistance(n, s) <= limit {
			return true
		}
	}
	return false
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// osaDistance is the optimal string alignment distance: Levenshtein with
// adjacent transpositions counting as one edit.
func osaDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// sourceSecrets is what rule 1 found in one file.
type sourceSecrets struct {
	// hideFrom maps a line number (1-based) to the byte offset in the line
	// from which it must not be printed (0: the whole line).
	hideFrom map[int]int
	// literals are the strings written in secret values, to be removed
	// from messages that echo them (an error quoting a function argument).
	literals []string
}

// minSecretLiteral is the shortest secret literal removed from messages.
const minSecretLiteral = pipeline.MinSecretLen

// findSourceSecrets scans src line by line, without parsing it (it may not
// parse), for the values of secret-looking attributes. A value continues
// over the following lines while brackets it opened are unbalanced or a
// heredoc it opened is not closed.
func findSourceSecrets(src []byte, names []string) sourceSecrets {
	ss := sourceSecrets{hideFrom: map[int]int{}}
	lines := strings.Split(string(src), "\n")
	addLiterals := func(value string) {
		for _, m := range quotedRE().FindAllStringSubmatchIndex(value, -1) {
			// The first argument of env() names a variable: the name is
			// not the secret (its value is), and an error about an unset
			// variable is useless without it. env()'s default is a value
			// and stays a literal.
			if envNameRE().MatchString(value[:m[0]]) {
				continue
			}
			ss.addLiteral(value[m[2]:m[3]])
		}
		// An unterminated string (a syntax error) runs to the end of the line.
		if strings.Count(value, `"`)%2 == 1 {
			ss.addLiteral(value[strings.LastIndex(value, `"`)+1:])
		}
	}
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSuffix(lines[i], "\r")
		from := -1
		for _, m := range keyRE().FindAllStringSubmatchIndex(line, -1) {
			if isSecretName(line[m[2]:m[3]], names) {
				from = m[5] // just after the = or :
				break
			}
		}
		if from < 0 {
			continue
		}
		ss.hideFrom[i+1] = from
		value := line[from:]
		addLiterals(value)
		// Multi-line values: hide every continuation line too.
		if hd := heredocRE().FindStringSubmatch(value); hd != nil {
			for i+1 < len(lines) {
				i++
				l := strings.TrimSpace(strings.TrimSuffix(lines[i], "\r"))
				ss.hideFrom[i+1] = 0
				if l == hd[1] {
					break
				}
				ss.addLiteral(l)
			}
			continue
		}
		depth := bracketDepth(value)
		for depth > 0 && i+1 < len(lines) {
			i++
			l := strings.TrimSuffix(lines[i], "\r")
			ss.hideFrom[i+1] = 0
			addLiterals(l)
			depth += bracketDepth(l)
		}
	}
	return ss
}

func (ss *sourceSecrets) addLiteral(s string) {
	s = strings.TrimSpace(s)
	if len(s) >= minSecretLiteral {
		ss.literals = append(ss.literals, s)
		// Messages show the decoded string; the source has escapes.
		if u := strings.ReplaceAll(strings.ReplaceAll(s, `\"`, `"`), `\\`, `\`); u != s {
			ss.literals = append(ss.literals, u)
		}
	}
}

// bracketDepth counts opening minus closing brackets outside strings.
func bracketDepth(s string) int {
	depth := 0
	inString := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			depth--
		}
	}
	return depth
}

// redactLiterals removes each secret literal from s, longest first so that a
// secret containing another is removed whole.
func redactLiterals(s string, literals []string) string {
	if len(literals) == 0 {
		return s
	}
	sorted := append([]string(nil), literals...)
	for i := 1; i < len(sorted); i++ {
		for j := i; j > 0 && len(sorted[j]) > len(sorted[j-1]); j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	for _, l := range sorted {
		if strings.TrimFunc(l, unicode.IsSpace) != "" {
			s = strings.ReplaceAll(s, l, redactedMark)
		}
	}
	return s
}
