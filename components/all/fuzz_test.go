package all_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runtime"
)

// The loader's fuzz targets with the real components (pipeline's own
// FuzzLoad uses test components): arbitrary bytes seeded with the example
// configs, and valid-looking configs built from each registered
// component's schema. Run them with
//
//	go test -run '^$' -fuzz FuzzLoadConfig -fuzztime 60s ./components/all/
//	go test -run '^$' -fuzz FuzzLoadGenerated -fuzztime 60s ./components/all/

// secret is the password of the DSN the generator writes; the loader
// must never print it.
const secret = "hunter2"

// checkLoad validates src as a config file in dir: a nil error or
// diagnostics, rendered, never a panic or another kind of error, and never
// the URL password.
func checkLoad(t *testing.T, dir string, src []byte) {
	t.Helper()
	err := runtime.Validate(filepath.Join(dir, "sluice.hcl"), src, func(k string) (string, bool) {
		if k == "SET" {
			return "value", true
		}
		return "", false
	})
	if err == nil {
		return
	}
	var de *runtime.DiagnosticsError
	if !errors.As(err, &de) {
		t.Fatalf("error is %T, want *DiagnosticsError: %v\nconfig:\n%s", err, err, src)
	}
	out := de.Error()
	if out == "" {
		t.Fatalf("empty rendering of the diagnostics of\n%s", src)
	}
	s := string(src)
	if n := strings.Count(s, secret); n > 0 && n == strings.Count(s, "://u:"+secret+"@") && strings.Contains(out, secret) {
		t.Fatalf("the URL password is printed:\n%s\nconfig:\n%s", out, src)
	}
}

// fuzzDir is a directory with the files configs may name.
func fuzzDir(f *testing.F) string {
	dir := f.TempDir()
	for name, content := range map[string]string{
		"mapping.yml": "mappings:\n- match: \"a.*\"\n  name: \"a_$1\"\n",
		"web.yml":     "http_server_config:\n  http2: false\n",
		"bad.yml":     "mappings: [\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "examples", "gunicorn-mapping.yml"))
	if err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gunicorn-mapping.yml"), b, 0o644); err != nil {
		f.Fatal(err)
	}
	return dir
}

// FuzzLoadConfig: arbitrary bytes as a config file of real components.
func FuzzLoadConfig(f *testing.F) {
	examples, _ := filepath.Glob(filepath.Join("..", "..", "config", "examples", "*.hcl"))
	if len(examples) == 0 {
		f.Fatal("no example configs to seed from")
	}
	for _, e := range examples {
		b, err := os.ReadFile(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("postgres_source \"db\" {\n  dsn = \"postgres://u:hunter2@h/db\"\n  query \"q\" {\n    sql = \"select 1 as n\"\n    metric \"m\" {\n      value = \"n\"\n    }\n  }\n}\n"))
	f.Add([]byte("statsd_receiver \"a\" {\n  mapping_file = \"bad.yml\"\n}\nmetrics_sink \"s\" {\n  inputs = [statsd_receiver.a.metrics]\n  listen = \":9102\"\n  web_config_file = \"web.yml\"\n}\n"))
	dir := fuzzDir(f)
	f.Fuzz(func(t *testing.T, src []byte) { checkLoad(t, dir, src) })
}

// FuzzLoadGenerated builds a config from the fuzz input read as a stream
// of choices: which components (every registered one, from its
// documented schema), which arguments and nested blocks, and values of
// the right type most of the time (from pools of interesting values, or
// raw fuzzed strings), references between blocks, and now and then a
// wrong type or an unknown attribute. The loader must answer every one
// with success or diagnostics.
func FuzzLoadGenerated(f *testing.F) {
	for _, s := range []string{
		"", "\x00", "\x01\x02\x03\x04\x05\x06\x07\x08\x09",
		strings.Repeat("\x01", 64), strings.Repeat("\xff\x00", 64), strings.Repeat("\x03\x07\x0b", 40),
		"abcdefghijklmnopqrstuvwxyz0123456789", strings.Repeat("\x02\x05\x00\x01", 50),
	} {
		f.Add([]byte(s))
	}
	var docs []runtime.ComponentDoc
	for _, r := range pipeline.Registrations() {
		docs = append(docs, runtime.Describe(r))
	}
	if len(docs) < 4 {
		f.Fatalf("only %d components registered", len(docs))
	}
	dir := fuzzDir(f)
	f.Fuzz(func(t *testing.T, choices []byte) {
		src := generate(docs, choices)
		checkLoad(t, dir, []byte(src))
	})
}

// chooser reads choices from the fuzz input; past its end every choice
// is 0 (the first option), so every input makes a finite config.
type chooser struct {
	b []byte
	i int
}

func (c *chooser) next() byte {
	if c.i >= len(c.b) {
		return 0
	}
	v := c.b[c.i]
	c.i++
	return v
}

func (c *chooser) n(k int) int { return int(c.next()) % k }

// raw is a string of fuzzed bytes (up to 31).
func (c *chooser) raw() string {
	n := c.n(32)
	var b strings.Builder
	for range n {
		b.WriteByte(c.next())
	}
	return b.String()
}

var (
	stringPool = []string{
		"", "a", "x_1", "127.0.0.1:0", ":9102", "localhost:9125", "nope", "/metrics/x", "/-/ready", "/metrics", "metrics/x",
		"(.*)", "[", "a.*.b", "^rx_(.*)$", "$1", "${1}", "regex", "glob", "drop", "map", "replace", "keep", "labelmap", "hashmod",
		"histogram", "summary", "distribution", "counter", "gauge", "observer", "lru", "random", "none",
		"postgres://u:hunter2@h/db", "host=h user=u password=x", "SELECT 1 AS n", "n", "le", "quantile", "__name__", "__x",
		"mapping.yml", "bad.yml", "missing.yml", "web.yml", "755", "abc", "ä", "a b", "\n", "\x00",
	}
	durationPool = []string{"1s", "0s", "-1s", "1h", "1ms", "100000h", "abc", "", "1", "10m30s"}
	numberPool   = []string{"0", "1", "-1", "0.5", "1e308", "-1e308", "65536", "4294967297", "1.5", "100000", "9223372036854775808", "2"}
	exprPool     = []string{`env("SET")`, `env("UNSET")`, `file("mapping.yml")`, `file("missing")`, `null`, `true`, `[]`, `{}`, `1`, `"${1 + }"`, `upper("a")`, `tonumber("x")`}
	keyPool      = []string{"a", "node", "le", "__x", "quantile", "error", "\"a b\"", "\"\"", "x_1", "ä"}
)

// quote writes s as an HCL string literal (a template: ${ stays as is
// now and then, to reach template errors).
func quote(c *chooser, s string) string {
	q := fmt.Sprintf("%q", s)
	if c.n(8) != 0 {
		q = strings.ReplaceAll(q, "${", "$${")
		q = strings.ReplaceAll(q, "%{", "%%{")
	}
	return q
}

func (c *chooser) str() string {
	switch c.n(8) {
	case 0:
		return quote(c, c.raw())
	case 1:
		return exprPool[c.n(len(exprPool))]
	default:
		return quote(c, stringPool[c.n(len(stringPool))])
	}
}

// value writes a value of the documented type typ (mostly).
func (c *chooser) value(typ string, refs []string) string {
	if c.n(16) == 0 { // a wrong type or an odd expression
		return exprPool[c.n(len(exprPool))]
	}
	switch {
	case typ == "string":
		return c.str()
	case typ == "number":
		return numberPool[c.n(len(numberPool))]
	case typ == "bool":
		return []string{"true", "false"}[c.n(2)]
	case typ == "duration":
		return quote(c, durationPool[c.n(len(durationPool))])
	case typ == "metrics":
		return refs[c.n(len(refs))]
	case typ == "expression":
		return c.str()
	case strings.HasPrefix(typ, "list(") && strings.HasSuffix(typ, ")"):
		elem := typ[len("list(") : len(typ)-1]
		n := c.n(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = c.value(elem, refs)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case strings.HasPrefix(typ, "map(") && strings.HasSuffix(typ, ")"):
		elem := typ[len("map(") : len(typ)-1]
		n := c.n(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = keyPool[c.n(len(keyPool))] + " = " + c.value(elem, refs)
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	return c.str()
}

// body writes the arguments of a block with schema args.
func (c *chooser) body(b *strings.Builder, args []runtime.ArgDoc, refs []string, indent string, depth int) {
	for _, a := range args {
		if strings.HasPrefix(a.Type, "block") {
			n := 0
			switch {
			case depth > 3:
			case a.Type == "block":
				n = 1
			case a.Type == "block (optional)":
				n = c.n(2)
			default:
				n = c.n(3)
			}
			for range n {
				b.WriteString(indent + a.Name)
				for range a.Labels {
					b.WriteString(" " + quote(c, stringPool[c.n(len(stringPool))]))
				}
				b.WriteString(" {\n")
				c.body(b, a.Args, refs, indent+"  ", depth+1)
				b.WriteString(indent + "}\n")
			}
			continue
		}
		// Required arguments are written most of the time, optional ones
		// half of the time.
		if (a.Required && c.n(16) == 0) || (!a.Required && c.n(2) == 0) {
			continue
		}
		fmt.Fprintf(b, "%s%s = %s\n", indent, a.Name, c.value(a.Type, refs))
	}
	if c.n(32) == 0 {
		fmt.Fprintf(b, "%scolour = %s\n", indent, c.str())
	}
}

// generate writes a config of up to 5 blocks; later blocks may reference
// the metrics exports of earlier ones (and, rarely, of themselves or of
// blocks that do not exist).
func generate(docs []runtime.ComponentDoc, choices []byte) string {
	c := &chooser{b: choices}
	var b strings.Builder
	refs := []string{"agent.metrics", "nothing.x.metrics"}
	names := []string{"a", "b", "app", "db", "x-1"}
	n := 1 + c.n(5)
	for range n {
		d := docs[c.n(len(docs))]
		id := d.Name + "." + names[c.n(len(names))]
		_, name, _ := strings.Cut(id, ".")
		fmt.Fprintf(&b, "%s %q {\n", d.Name, name)
		self := append(refs, id+".metrics") // a cycle, now and then
		c.body(&b, d.Args, self, "  ", 0)
		b.WriteString("}\n\n")
		for _, e := range d.Exports {
			if e.Type == "metrics" {
				refs = append(refs, id+"."+e.Name)
			}
		}
	}
	return b.String()
}

// TestGeneratedConfigsLoad checks the generator: a sample of its configs
// covers every component, and some of them load without diagnostics (a
// generator whose every config is rejected at the first attribute would
// fuzz nothing past the schema check).
func TestGeneratedConfigsLoad(t *testing.T) {
	var docs []runtime.ComponentDoc
	for _, r := range pipeline.Registrations() {
		docs = append(docs, runtime.Describe(r))
	}
	dir := t.TempDir()
	seen := map[string]bool{}
	ok := 0
	for i := range 2000 {
		choices := make([]byte, 256)
		x := uint32(i*2654435761 + 1)
		for j := range choices {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			choices[j] = byte(x)
		}
		src := generate(docs, choices)
		for _, d := range docs {
			if strings.Contains(src, d.Name+" \"") {
				seen[d.Name] = true
			}
		}
		err := runtime.Validate(filepath.Join(dir, "sluice.hcl"), []byte(src), func(string) (string, bool) { return "", false })
		if err == nil {
			ok++
		}
	}
	for _, d := range docs {
		if !seen[d.Name] {
			t.Errorf("no generated config has a %s block", d.Name)
		}
	}
	if ok == 0 {
		t.Error("no generated config loads")
	}
	t.Logf("%d of 2000 generated configs load", ok)
}
