package runtime_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runtime"
)

// secretSrcArgs has a secret attribute, like postgres_source's dsn, so that
// the pipeline's tests see a registered secret name.
type secretSrcArgs struct {
	Conn    string `hcl:"conn_string" secret:"true"`
	MaxConn int    `hcl:"max_conns,optional"`
}

func init() {
	pipeline.Register(pipeline.Registration[secretSrcArgs, metricsExports]{
		Name:    "test_secret_source",
		Summary: "test source with a secret argument",
		Build: func(o pipeline.Options[metricsExports], _ secretSrcArgs) (pipeline.Component[secretSrcArgs], error) {
			o.OnExports(metricsExports{})
			return idleUpdate[secretSrcArgs]{}, nil
		},
	})
}

// validateText validates src and returns the rendered diagnostics.
func validateText(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	err := runtime.Validate(path, []byte(src), func(string) (string, bool) { return "", false })
	if err == nil {
		t.Fatalf("config loaded; want diagnostics:\n%s", src)
	}
	var de *runtime.DiagnosticsError
	if !errors.As(err, &de) {
		t.Fatalf("error is %T, want *DiagnosticsError: %v", err, err)
	}
	return de.Error()
}

// Every reproduction of the secrets-in-diagnostics report, and variants
// with other secret shapes: the rendered text never holds the password, and
// still says what is wrong and where.
func TestDiagnosticsRedactSecrets(t *testing.T) {
	const pw = "S3cr3tPw"
	tests := []struct {
		name string
		src  string
		want []string // still in the output
	}{
		{"syntax error on the secret line", "test_secret_source \"db\" {\n  conn_string = \"postgres://u:" + pw + "@h/db\n}\n", []string{"test.hcl:2:"}},
		{"syntax error before the secret line", "test_secret_source \"db\" {\n  max_conns = \n  conn_string = \"postgres://u:" + pw + "@h/db\"\n}\n", []string{"test.hcl:"}},
		{"misspelled secret attribute", "test_secret_source \"db\" {\n  conn_strnig = \"postgres://u:" + pw + "@h/db\"\n}\n", []string{"test.hcl:2:3", "Unsupported argument", "conn_strnig"}},
		{"misspelled dsn", "test_source \"a\" {\n  dsnn = \"postgres://u:" + pw + "@h/db\"\n}\n", []string{"test.hcl:2:3", "Unsupported argument"}},
		{"secret set twice", "test_secret_source \"db\" {\n  conn_string = \"postgres://u:x@h/db\"\n  conn_string = \"postgres://u:" + pw + "@h/db\"\n}\n", []string{"test.hcl:3:3", "redefined"}},
		{"function echoing a URL", "test_secret_source \"db\" {\n  conn_string = tonumber(\"postgres://u:" + pw + "@h/db\")\n}\n", []string{"test.hcl:2:", "cannot convert"}},
		{"function echoing a key-value DSN", "test_secret_source \"db\" {\n  conn_string = tonumber(\"host=h password=" + pw + "\")\n}\n", []string{"test.hcl:2:"}},
		{"function echoing a bare secret", "test_secret_source \"db\" {\n  conn_string = tonumber(\"" + pw + "\")\n}\n", []string{"test.hcl:2:"}},
		{"URL in an unrelated attribute", "test_source \"a\" {\n  value = tonumber(\"https://bob:" + pw + "@example.com/x\")\n}\n", []string{"test.hcl:2:", "value = tonumber(\"https://<redacted>@example.com/x\")", "cannot convert \"https://<redacted>@example.com/x\""}},
		{"password attribute of an unknown block", "nope \"a\" {\n  password = \"" + pw + "\"\n}\n", []string{"Unsupported block type"}},
		{"token inside an object", "test_source \"a\" {\n  labels = { api_token = \"" + pw + "\", x = }\n}\n", []string{"test.hcl:2:"}},
		{"heredoc secret", "test_secret_source \"db\" {\n  conn_string = <<EOT\n" + pw + "\nEOT\n  conn_string = 1\n}\n", []string{"redefined"}},
		{"multi-line secret value", "test_secret_source \"db\" {\n  conn_string = join(\"\", [\n    \"" + pw + "\",\n    nope.x,\n  ])\n}\n", []string{"test.hcl:4:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := validateText(t, tt.src)
			if strings.Contains(out, pw) {
				t.Errorf("the password is printed:\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// A secret line still shows its attribute name, so the user knows which
// line is meant.
func TestDiagnosticsRedactKeepsAttributeName(t *testing.T) {
	out := validateText(t, "test_secret_source \"db\" {\n  conn_strnig = \"postgres://u:pw123@h/db\"\n}\n")
	if !strings.Contains(out, "conn_strnig = <redacted>") {
		t.Errorf("want the attribute name with the value redacted:\n%s", out)
	}
}

func TestRedactText(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h/db":                      "postgres://<redacted>@h/db",
		`dsn "postgres://u:p@ss/w@h:5432/db" bad`:   `dsn "postgres://<redacted>@h:5432/db" bad`,
		"redis://:pw@h":                             "redis://<redacted>@h",
		"https://example.com/a":                     "https://example.com/a",
		"host=h password=pw user=u":                 "host=h password=<redacted> user=u",
		"host=h password='p w' user=u":              "host=h password=<redacted> user=u",
		"two postgres://a:b@h and mysql://c:d@h2/x": "two postgres://<redacted>@h and mysql://<redacted>@h2/x",
	} {
		if got := runtime.RedactText(in); got != want {
			t.Errorf("RedactText(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzRedactText: the password of a scheme://user:pass@host embedded
// anywhere never survives.
func FuzzRedactText(f *testing.F) {
	f.Add("cannot convert \"", "postgres", "u", "PASSWORD", "h/db", "\" to number")
	f.Add("", "redis", "", "p@ss:w/rd", "h", "")
	f.Add("x://y ", "a", "b", "c\"d", "e@f", " g")
	f.Add("password=", "s", "u", "pw", "", "")
	f.Fuzz(func(t *testing.T, prefix, scheme, user, pass, host, suffix string) {
		if len(pass) < 3 || strings.ContainsFunc(user+pass, unicode.IsSpace) || strings.Contains(user, ":") {
			return // not a URL password (whitespace ends a URL)
		}
		in := prefix + scheme + "://" + user + ":" + pass + "@" + host + suffix
		// pass must not be found in the output for another reason: as
		// part of the rest of the input, or of the redaction mark.
		for _, other := range []string{prefix + scheme + "://" + user + ":" + "@" + host + suffix, "<redacted>"} {
			if strings.Contains(other, pass) {
				return
			}
		}
		out := runtime.RedactText(in)
		if strings.Contains(out, pass) {
			t.Fatalf("RedactText(%q) = %q still holds %q", in, out, pass)
		}
	})
}

// FuzzLoad feeds arbitrary bytes to the loader as a config file: it must
// never panic, always answer with diagnostics (not another error), render
// them, and never print the password of a URL in the file.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"",
		"# only a comment\n",
		"test_source \"a\" {}\n",
		"test_source \"a\" {\n  labels = { a = \"x\", a = \"y\" }\n}\n",
		"test_source \"a\" {}\ntest_sink \"s\" {\n  inputs = [test_source.a.metrics]\n}\n",
		"test_secret_source \"db\" {\n  conn_string = \"postgres://u:hunter2@h/db\n}\n",
		"test_secret_source \"db\" {\n  conn_string = tonumber(\"postgres://u:hunter2@h/db\")\n}\n",
		"test_source \"a\" {\n  item \"x\" {\n    count = 1\n  }\n  interval = <<EOT\nx\nEOT\n}\n",
		"test_sink \"a\" {\n  inputs = [test_sink.a.metrics]\n}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		path := filepath.Join(t.TempDir(), "fuzz.hcl")
		err := runtime.Validate(path, src, func(string) (string, bool) { return "", false })
		if err == nil {
			return
		}
		var de *runtime.DiagnosticsError
		if !errors.As(err, &de) {
			t.Fatalf("error is %T, want *DiagnosticsError: %v", err, err)
		}
		out := de.Error()
		if out == "" {
			t.Fatal("empty rendering")
		}
		// When the only occurrences of the password are as a URL's
		// password, no rendering may show it.
		const secret = "hunter2"
		s := string(src)
		if n := strings.Count(s, secret); n > 0 && n == strings.Count(s, "://u:"+secret+"@") && strings.Contains(out, secret) {
			t.Fatalf("the URL password is printed:\n%s", out)
		}
	})
}
