package runtime_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime"
)

func TestLoaderListenAddressConflicts(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		agent string
		probe string // --web.probe-listen-address
		// want: "" for a valid config, else the diagnostic's position and
		// a fragment of its detail.
		line, col int
		want      string
	}{
		{name: "same address", src: "test_listener \"a\" {\n  tcp = \":9102\"\n}\ntest_listener \"b\" {\n  tcp = \":9102\"\n}\n", line: 5, col: 9, want: "test_listener.a already claims at "},
		{name: "wildcard and loopback", src: "test_listener \"a\" {\n  tcp = \"127.0.0.1:9102\"\n}\ntest_listener \"b\" {\n  tcp = \"0.0.0.0:9102\"\n}\n", line: 5, col: 9, want: "test_listener.a"},
		{name: "localhost and ::1", src: "test_listener \"a\" {\n  tcp = \"[::1]:9102\"\n}\ntest_listener \"b\" {\n  tcp = \"localhost:9102\"\n}\n", line: 5, col: 9, want: "test_listener.a"},
		{name: "agent port", agent: "0.0.0.0:9470", src: "test_listener \"a\" {\n  tcp = \"127.0.0.1:9470\"\n}\n", line: 2, col: 9, want: "agent's own HTTP server uses (--server.http.listen-addr=0.0.0.0:9470)"},
		{name: "agent probe port", agent: "0.0.0.0:9470", probe: ":9471", src: "test_listener \"a\" {\n  tcp = \"127.0.0.1:9471\"\n}\n", line: 2, col: 9, want: "(--web.probe-listen-address=:9471)"},
		{name: "same udp port", src: "test_listener \"a\" {\n  udp = \":9125\"\n}\ntest_listener \"b\" {\n  udp = \":9125\"\n}\n", line: 5, col: 9, want: "udp :9125"},
		{name: "same unixgram path", src: "test_listener \"a\" {\n  unixgram = \"/tmp/s.sock\"\n}\ntest_listener \"b\" {\n  unixgram = \"/tmp/./s.sock\"\n}\n", line: 5, col: 14, want: "unixgram"},
		{name: "one component twice", src: "test_listener \"a\" {\n  tcp = \":9102\"\n  udp = \":9102\"\n}\ntest_listener \"b\" {\n  tcp = \"[::]:9102\"\n}\n", line: 6, col: 9, want: "tcp"},
		{name: "tcp and udp on one port", agent: ":9102", src: "test_listener \"a\" {\n  udp = \":9102\"\n}\n"},
		{name: "different hosts", src: "test_listener \"a\" {\n  tcp = \"127.0.0.1:9102\"\n}\ntest_listener \"b\" {\n  tcp = \"127.0.0.2:9102\"\n}\n"},
		{name: "port 0", src: "test_listener \"a\" {\n  tcp = \":0\"\n}\ntest_listener \"b\" {\n  tcp = \":0\"\n}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "test.hcl")
			err := runtime.ValidateWith(path, []byte(tt.src), runtime.ValidateOptions{LoadOptions: runtime.LoadOptions{AgentListenAddress: tt.agent, AgentProbeListenAddress: tt.probe}})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("want valid: %v", err)
				}
				return
			}
			de := asDiags(t, err)
			if len(de.Diags) != 1 {
				t.Fatalf("got %d diagnostics, want 1:\n%v", len(de.Diags), de)
			}
			d := de.Diags[0]
			// The diagnostic is at the second claim and names the first
			// one's position.
			if tt.agent == "" && !strings.Contains(d.Detail, "test.hcl:") {
				t.Errorf("detail does not point at the first claim: %s", d.Detail)
			}
			if d.Summary != "Listen address used twice" || d.Subject.Start.Line != tt.line || d.Subject.Start.Column != tt.col || !strings.Contains(d.Detail, tt.want) {
				t.Errorf("got %s at %d:%d: %s\nwant %d:%d containing %q", d.Summary, d.Subject.Start.Line, d.Subject.Start.Column, d.Detail, tt.line, tt.col, tt.want)
			}
		})
	}
}

func asDiags(t *testing.T, err error) *runtime.DiagnosticsError {
	t.Helper()
	de, ok := err.(*runtime.DiagnosticsError)
	if !ok {
		t.Fatalf("error = %v (%T), want *DiagnosticsError", err, err)
	}
	return de
}
