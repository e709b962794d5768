package statsd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// diagAt asserts that diags hold an error mentioning msg whose subject
// starts on line.
func diagAt(t *testing.T, diags hcl.Diagnostics, line int, msg string) {
	t.Helper()
	for _, d := range diags {
		if d.Severity == hcl.DiagError && strings.Contains(d.Detail+d.Summary, msg) && d.Subject != nil && d.Subject.Start.Line == line {
			return
		}
	}
	t.Fatalf("want an error containing %q at line %d, got: %v", msg, line, diags)
}

func TestDefaults(t *testing.T) {
	args, diags := pipelinetest.Decode(t, "statsd_receiver", ``)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	a := args.(Arguments)
	if a.ListenUDP != ":9125" || a.ListenTCP != "" || a.ListenUnixgram != "" || a.UnixgramMode != "755" ||
		!a.ParseDogStatsDTags || !a.ParseInfluxDBTags || !a.ParseLibratoTags || !a.ParseSignalFXTags ||
		a.CacheType != "lru" || a.CacheSize != 1000 || a.MaxSeries != 100000 {
		t.Fatalf("unexpected defaults: %+v", a)
	}
}

func TestInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yml", "mappings:\n- match: \"a.*\"\n  name: \"not-valid-name\"\n")
	badYAML := writeFile(t, dir, "syntax.yml", "mappings: [\n")
	unknown := writeFile(t, dir, "unknown.yml", "mappings:\n- match: a.b\n  name: a_b\n  colour: blue\n")
	withDefaults := writeFile(t, dir, "defaults.yml", "defaults:\n  observer_type: histogram\n")
	fileLe := writeFile(t, dir, "le.yml", "mappings:\n- match: lat.*\n  name: lat\n  observer_type: histogram\n  labels:\n    le: $1\n")
	fileQuantile := writeFile(t, dir, "quantile.yml", "mappings:\n- match: lat.*\n  name: lat\n  labels:\n    quantile: $1\n")
	fileDefaultsLe := writeFile(t, dir, "defaults-le.yml", "defaults:\n  observer_type: histogram\nmappings:\n- match: lat.*\n  name: lat\n  labels:\n    le: $1\n")

	cases := []struct {
		name, body string
		line       int
		msg        string
	}{
		{"invalid mapping file", "listen_udp = \"127.0.0.1:0\"\nmapping_file = \"" + bad + "\"\n", 2, "doesn't match regex"},
		{"mapping file syntax", "mapping_file = \"" + badYAML + "\"\n", 1, "invalid mapping file"},
		{"mapping file unknown field", "mapping_file = \"" + unknown + "\"\n", 1, "an unknown field at line 4"},
		{"missing mapping file", "mapping_file = \"" + filepath.Join(dir, "nope.yml") + "\"\n", 1, "no such file"},
		{"defaults twice", "mapping_file = \"" + withDefaults + "\"\nmapping_defaults {\n  ttl = \"1m\"\n}\n", 1, "defaults in one place"},
		{"bad glob", "mapping {\n  match = \"a..b\"\n  name = \"x\"\n}\n", 2, "invalid match"},
		{"bad regex", "mapping {\n  match = \"(a\"\n  match_type = \"regex\"\n  name = \"x\"\n}\n", 2, "invalid regex"},
		{"bad name", "mapping {\n  match = \"a.b\"\n\n  name = \"a-b\"\n}\n", 4, "doesn't match regex"},
		{"bad label", "mapping {\n  match = \"a.*\"\n  name = \"a\"\n  labels = { \"1x\" = \"$1\" }\n}\n", 4, "not a valid Prometheus label name"},
		{"bad action", "mapping {\n  match = \"a.b\"\n  name = \"a\"\n  action = \"keep\"\n}\n", 4, "not one of map, drop"},
		{"bad observer", "mapping {\n  match = \"a.b\"\n  name = \"a\"\n  observer_type = \"gauge\"\n}\n", 4, "not one of histogram, summary"},
		{"bad match_metric_type", "mapping {\n  match = \"a.b\"\n  name = \"a\"\n  match_metric_type = \"set\"\n}\n", 4, "not one of counter"},
		{"histogram with summary options", "mapping {\n  match = \"a.b\"\n  name = \"a\"\n  observer_type = \"histogram\"\n  summary_options {\n    max_age = \"1m\"\n  }\n}\n", 1, "histogram observer and summary options"},
		{"bad quantile key", "mapping {\n  match = \"a.b\"\n  name = \"a\"\n  summary_options {\n    quantiles = [{ quantile = 0.5, err = 0.05 }]\n  }\n}\n", 5, "unknown key \"err\""},
		{"bad defaults", "mapping_defaults {\n  match_type = \"fuzzy\"\n}\n", 2, "not one of glob, regex"},
		{"bad cache type", "cache_type = \"arc\"\n", 1, "not a cache type"},
		{"negative cache size", "cache_size = -1\n", 1, "must not be negative"},
		{"negative max_series", "max_series = -5\n", 1, "must not be negative"},
		{"negative read_buffer", "read_buffer = -5\n", 1, "must not be negative"},
		{"bad udp address", "listen_udp = \"localhost\"\n", 1, "not a host:port"},
		{"bad tcp port", "listen_tcp = \"127.0.0.1:99999\"\n", 1, "not a number from 0 to 65535"},
		{"bad mode", "listen_unixgram = \"/tmp/x.sock\"\nunixgram_mode = \"rw\"\n", 2, "octal"},
		{"no listener", "listen_udp = \"\"\n", 0, "at least one of"},
		// client_golang panics on these at the first event: they are
		// diagnostics, in the file and in blocks.
		{"le on a histogram in the file", "mapping_file = \"" + fileLe + "\"\n", 1, `label "le" is reserved`},
		{"quantile on the default summary in the file", "mapping_file = \"" + fileQuantile + "\"\n", 1, `label "quantile" is reserved`},
		{"le with the file's histogram defaults", "mapping_file = \"" + fileDefaultsLe + "\"\n", 1, `label "le" is reserved`},
		{"le on a histogram block", "mapping {\n  match = \"lat.*\"\n  name = \"lat\"\n  observer_type = \"histogram\"\n  labels = { le = \"$1\" }\n}\n", 5, `label "le" is reserved`},
		{"quantile on a summary block", "mapping {\n  match = \"lat.*\"\n  name = \"lat\"\n  observer_type = \"summary\"\n  labels = { quantile = \"$1\" }\n}\n", 5, `label "quantile" is reserved`},
		{"reserved __ label on a block", "mapping {\n  match = \"lat.*\"\n  name = \"lat\"\n  labels = { __name__ = \"$1\" }\n}\n", 4, "reserved"},
		{"quantile on a block with no observer_type (summary by default)", "mapping {\n  match = \"lat.*\"\n  name = \"lat\"\n  labels = { quantile = \"$1\" }\n}\n", 0, `label "quantile" is reserved`},
		{"le on a block with histogram defaults", "mapping_defaults {\n  observer_type = \"histogram\"\n}\nmapping {\n  match = \"lat.*\"\n  name = \"lat\"\n  labels = { le = \"$1\" }\n}\n", 0, `label "le" is reserved`},
		{"zero max_connections", "listen_tcp = \"127.0.0.1:0\"\nmax_connections = 0\n", 2, "at least 1"},
		{"zero max_line_length", "listen_tcp = \"127.0.0.1:0\"\nmax_line_length = 0\n", 2, "must be from 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, diags := pipelinetest.Decode(t, "statsd_receiver", c.body)
			if !diags.HasErrors() {
				t.Fatalf("no error for:\n%s", c.body)
			}
			if c.line == 0 {
				if !strings.Contains(diags.Error(), c.msg) {
					t.Fatalf("want %q in %v", c.msg, diags)
				}
				return
			}
			diagAt(t, diags, c.line, c.msg)
		})
	}
}

// A relative mapping_file resolves against the config directory; Validate
// cannot see that directory, so Build reports a bad file.
func TestRelativeMappingFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "good.yml", "mappings:\n- match: app.*.hits\n  name: hits_total\n  labels: {page: \"$1\"}\n")
	writeFile(t, dir, "bad.yml", "mappings:\n- match: app.*.hits\n")

	if _, err := pipelinetest.TryNew(t, "statsd_receiver", `mapping_file = "bad.yml"`, pipelinetest.WithConfigDir(dir)); err == nil ||
		!strings.Contains(err.Error(), "bad.yml") || !strings.Contains(err.Error(), "didn't set a metric name") {
		t.Fatalf("want an error naming bad.yml, got %v", err)
	}

	h, r := startReceiver(t, "listen_udp = \"127.0.0.1:0\"\nmapping_file = \"good.yml\"\n", pipelinetest.WithConfigDir(dir))
	send(t, "udp", r.addr(t, "udp"), "app.home.hits:3|c")
	waitValue(t, h.Gatherer(), "hits_total", map[string]string{"page": "home"}, 3)
}

// TestReservedLabelAllowedOffObservers: le and quantile are only reserved
// on the observer types that use them; a counter-only mapping may have
// them.
func TestReservedLabelAllowedOffObservers(t *testing.T) {
	for _, body := range []string{
		"mapping {\n  match = \"a.*\"\n  name = \"a_total\"\n  match_metric_type = \"counter\"\n  labels = { le = \"$1\", quantile = \"$1\" }\n}\n",
		"mapping {\n  match = \"a.*\"\n  name = \"a\"\n  observer_type = \"histogram\"\n  labels = { quantile = \"$1\" }\n}\n",
		"mapping {\n  match = \"a.*\"\n  name = \"a\"\n  labels = { le = \"$1\" }\n}\n", // summary by default
	} {
		if _, diags := pipelinetest.Decode(t, "statsd_receiver", body); diags.HasErrors() {
			t.Errorf("%s: %v", body, diags)
		}
	}
}

// TestMappingFileContentNotEchoed: a mapping_file that is not a mapping
// file (mapping_file = "/etc/shadow") is reported by path and line, never
// by its content.
func TestMappingFileContentNotEchoed(t *testing.T) {
	dir := t.TempDir()
	const secret = "s3cr3t-Hunter2-zq9"
	for name, content := range map[string]string{
		"shadow":       "root:$6$" + secret + ":19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
		"env":          "API_TOKEN_" + secret + ": x\n",
		"syntax":       "mappings:\n  - match: a\n   " + secret + ": [\n",
		"duplicate":    "mappings: []\nmappings: " + secret + "\n",
		"wrong type":   "mappings:\n- match: a.b\n  name: a_b\n  ttl: " + secret + "\n",
		"list of text": "- " + secret + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, dir, strings.ReplaceAll(name, " ", "_")+".yml", content)
			_, diags := pipelinetest.Decode(t, "statsd_receiver", "mapping_file = \""+path+"\"\n")
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			msg := diags.Error()
			if strings.Contains(msg, secret) || strings.Contains(msg, "root:") {
				t.Fatalf("the error quotes the file: %s", msg)
			}
			if !strings.Contains(msg, path) || !strings.Contains(msg, "line ") {
				t.Fatalf("the error should name the file and a line: %s", msg)
			}
			// And through Build/Update (a relative path, resolved there).
			h := pipelinetest.New(t, "statsd_receiver", "listen_udp = \"127.0.0.1:0\"\n", pipelinetest.WithConfigDir(dir))
			err := h.Update("listen_udp = \"127.0.0.1:0\"\nmapping_file = \"" + filepath.Base(path) + "\"\n")
			if err == nil || strings.Contains(err.Error(), secret) {
				t.Fatalf("update: %v", err)
			}
		})
	}
}
