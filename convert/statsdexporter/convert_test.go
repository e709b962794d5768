package statsdexporter

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclwrite"

	_ "github.com/sluicehq/sluice/components/all" // validation needs the real components
	"github.com/sluicehq/sluice/runtime"
)

const mapping = `mappings:
  - match: "app.*.requests"
    name: "app_requests_total"
    labels:
      service: "$1"
`

// checkValid writes res next to a mapping file named m.yml and checks
// that the config validates as `sluice validate` does and is already in
// canonical format, as `sluice fmt --check` checks.
func checkValid(t *testing.T, res Result) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.yml"), []byte(mapping), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "statsd.hcl")
	if err := os.WriteFile(path, res.HCL, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runtime.ValidateWith(path, res.HCL, runtime.ValidateOptions{}); err != nil {
		t.Fatalf("converted config does not validate: %v\n%s", err, res.HCL)
	}
	if !bytes.Equal(hclwrite.Format(res.HCL), res.HCL) {
		t.Fatalf("converted config is not in canonical format:\n%s", res.HCL)
	}
}

// TestConvertShapes converts three command lines of different shapes:
// the defaults (UDP and TCP on :9125), a Kubernetes sidecar with a
// mapping file and tuning flags, and a unixgram-only exporter with tag
// parsers off and flags that have no equivalent.
func TestConvertShapes(t *testing.T) {
	cases := []struct {
		name         string
		args         []string
		want         []string // lines the HCL must contain
		warnings     int
		wantWarnings []string
	}{
		{
			name: "defaults",
			args: nil,
			want: []string{`listen_udp = ":9125"`, `listen_tcp = ":9125"`, `listen = ":9102"`, `openmetrics = false`,
				`inputs = [statsd_receiver.statsd.metrics, agent.metrics]`},
		},
		{
			name: "sidecar",
			args: []string{"--statsd.listen-udp=127.0.0.1:8125", "--statsd.listen-tcp=", "--statsd.mapping-config", "m.yml",
				"--statsd.read-buffer=8388608", "--statsd.cache-size=5000", "--statsd.cache-type=random",
				"--web.listen-address=:9200", "--log.level=debug", "--web.enable-lifecycle"},
			want: []string{`listen_udp = "127.0.0.1:8125"`, `listen_tcp = ""`, `mapping_file = "m.yml"`, `read_buffer = 8388608`,
				`cache_size = 5000`, `cache_type = "random"`, `listen = ":9200"`, "relative to this file's directory",
				"# Run with: sluice run --web.enable-lifecycle --log.level=debug FILE"},
		},
		{
			name: "unixgram",
			args: []string{"--statsd.listen-udp=", "--statsd.listen-tcp=", "--statsd.listen-unixgram=/run/statsd.sock",
				"--statsd.unixsocket-mode=750", "--no-statsd.parse-influxdb-tags", "--no-statsd.parse-signalfx-tags",
				"--statsd.relay.address=10.0.0.1:8125", "--statsd.event-queue-size=50000", "--statsd.event-flush-interval=1s",
				"--statsd.udp-packet-queue-size=20000", "--web.telemetry-path=/stats", "--debug.dump-fsm=/tmp/fsm.dot", "--check-config"},
			want: []string{`listen_unixgram = "/run/statsd.sock"`, `unixgram_mode = "750"`, `parse_influxdb_tags = false`,
				`parse_signalfx_tags = false`, "# --statsd.relay.address=10.0.0.1:8125 has no equivalent",
				"# --statsd.event-queue-size=50000 has no equivalent", "# --web.telemetry-path=/stats has no equivalent",
				"# --check-config: use `sluice validate`"},
			wantWarnings: []string{"statsd.event-queue-size", "statsd.event-flush-interval",
				"statsd.udp-packet-queue-size", "statsd.relay.address", "debug.dump-fsm", "web.telemetry-path"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Convert(c.args)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(squeeze(res.HCL), w) {
					t.Errorf("HCL lacks %q:\n%s", w, res.HCL)
				}
			}
			if len(res.Warnings) != len(c.wantWarnings) {
				t.Errorf("warnings = %q, want one for each of %q", res.Warnings, c.wantWarnings)
			}
			for i, w := range c.wantWarnings {
				if i < len(res.Warnings) && !strings.Contains(res.Warnings[i], "--"+w+"=") {
					t.Errorf("warning %d = %q, want one about --%s", i, res.Warnings[i], w)
				}
			}
			checkValid(t, res)
		})
	}
}

func TestConvertErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--statsd.no-such-flag=1"},
		{"--statsd.cache-type=fifo"},
		{"--statsd.cache-size=many"},
		{"--statsd.cache-size=-1"},
		{"--statsd.event-flush-interval=soon"},
		{"--statsd.listen-udp=", "--statsd.listen-tcp="}, // no listener: statsd_exporter exits
		{"--statsd.parse-dogstatsd-tags=false"},          // kingpin refuses a value on a bool flag
		{"--help"},
		{"positional"},
	} {
		if res, err := Convert(args); err == nil {
			t.Errorf("Convert(%q) = nil error, want one; HCL:\n%s", args, res.HCL)
		}
	}
}

// TestConvertQuotes: values that HCL would read as templates or escapes
// stay literal.
func TestConvertQuotes(t *testing.T) {
	res, err := Convert([]string{"--statsd.listen-unixgram=/run/${x}%{y}\"q\".sock", "--statsd.mapping-config=/etc/a b.yml"})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`listen_unixgram = "/run/$${x}%%{y}\"q\".sock"`, `mapping_file = "/etc/a b.yml"`} {
		if !strings.Contains(squeeze(res.HCL), w) {
			t.Errorf("HCL lacks %q:\n%s", w, res.HCL)
		}
	}
	if _, diags := hclparse.NewParser().ParseHCL(res.HCL, "x.hcl"); diags.HasErrors() {
		t.Fatal(diags)
	}
}

// FuzzConvert: any command line converts to HCL that parses and is in
// canonical format, or is refused with an error.
func FuzzConvert(f *testing.F) {
	f.Add("--statsd.listen-udp=:1\x00--statsd.mapping-config=m.yml")
	f.Add("--statsd.listen-unixgram=/x\n}\nevil {\x00--statsd.relay.address=a\nb")
	f.Add("--web.telemetry-path=${a}\x00--log.level=warn")
	f.Fuzz(func(t *testing.T, joined string) {
		if len(joined) > 4096 {
			return
		}
		res, err := Convert(strings.Split(joined, "\x00"))
		if err != nil {
			return
		}
		if _, diags := hclparse.NewParser().ParseHCL(res.HCL, "x.hcl"); diags.HasErrors() {
			t.Fatalf("converted HCL does not parse: %v\n%s", diags, res.HCL)
		}
		if !bytes.Equal(hclwrite.Format(res.HCL), res.HCL) {
			t.Fatalf("not canonical:\n%s", res.HCL)
		}
	})
}

// squeeze collapses the alignment hclwrite.Format adds before "=".
func squeeze(hcl []byte) string {
	return regexp.MustCompile(` +=`).ReplaceAllString(string(hcl), " =")
}
