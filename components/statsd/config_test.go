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

	cases := []struct {
		name, body string
		line       int
		msg        string
	}{
		{"invalid mapping file", "listen_udp = \"127.0.0.1:0\"\nmapping_file = \"" + bad + "\"\n", 2, "doesn't match regex"},
		{"mapping file syntax", "mapping_file = \"" + badYAML + "\"\n", 1, "invalid mapping file"},
		{"mapping file unknown field", "mapping_file = \"" + unknown + "\"\n", 1, "colour"},
		{"missing mapping file", "mapping_file = \"" + filepath.Join(dir, "nope.yml") + "\"\n", 1, "no such file"},
		{"defaults twice", "mapping_file = \"" + withDefaults + "\"\nmapping_defaults {\n  ttl = \"1m\"\n}\n", 1, "defaults in one place"},
		{"bad glob", "mapping {\n  match = \"a..b\"\n  name = \"x\"\n}\n", 2, "invalid match"},
		{"bad regex", "mapping {\n  match = \"(a\"\n  match_type = \"regex\"\n  name = \"x\"\n}\n", 2, "invalid regex"},
		{"bad name", "mapping {\n  match = \"a.b\"\n\n  name = \"a-b\"\n}\n", 4, "doesn't match regex"},
		{"bad label", "mapping {\n  match = \"a.*\"\n  name = \"a\"\n  labels = { \"1x\" = \"$1\" }\n}\n", 4, "invalid label key"},
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
