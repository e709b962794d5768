package sluicecmd_test

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/sluicecmd"
)

// helpFlag is a flag as `sluice CMD --help` shows it.
type helpFlag struct {
	name, short, def string
	bool             bool
}

// commandFlags parses the flags of `sluice cmd --help` (help excluded).
func commandFlags(t *testing.T, cmd string) []helpFlag {
	t.Helper()
	var out, errOut bytes.Buffer
	sluicecmd.Run([]string{cmd, "--help"}, &out, &errOut)
	re := regexp.MustCompile(`^ {2,8}(?:-(\w), )?--(\[no-\])?([a-z][a-z.\-]*)(?:=(\S+))?`)
	var flags []helpFlag
	for line := range strings.SplitSeq(out.String(), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil || m[3] == "help" {
			continue
		}
		def := strings.Trim(m[4], `"`)
		if strings.HasPrefix(def, "<") { // a placeholder, no default
			def = ""
		}
		flags = append(flags, helpFlag{name: m[3], short: m[1], def: def, bool: m[2] != ""})
	}
	if len(flags) == 0 {
		t.Fatalf("no flags in sluice %s --help:\n%s", cmd, out.String())
	}
	return flags
}

func operationsDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The table "Flags of `sluice run`" in docs/operations.md has one row per
// flag of `sluice run`, with its default, and no row for a flag that is
// gone.
func TestRunFlagsTableMatchesCode(t *testing.T) {
	doc := operationsDoc(t)
	rows := map[string]string{} // flag -> default column
	for _, m := range regexp.MustCompile("(?m)^\\| `--([a-z][a-z.\\-]*)` \\| ([^|]*) \\|").FindAllStringSubmatch(doc, -1) {
		rows[m[1]] = strings.TrimSpace(m[2])
	}
	flags := commandFlags(t, "run")
	if len(flags) < 10 {
		t.Fatalf("parsed %d flags of sluice run, expected more: %v", len(flags), flags)
	}
	for _, f := range flags {
		def, ok := rows[f.name]
		switch {
		case !ok:
			t.Errorf("--%s is a flag of sluice run but has no row in docs/operations.md", f.name)
		case f.bool && def != "off":
			t.Errorf("--%s: the table says default %q; it is a switch, off by default", f.name, def)
		case !f.bool && f.def != "" && def != "`"+f.def+"`":
			t.Errorf("--%s: the table says default %q, the code %q", f.name, def, f.def)
		}
		delete(rows, f.name)
	}
	for name := range rows {
		t.Errorf("docs/operations.md has a row for --%s, which sluice run does not have", name)
	}
}

// Each row of the command table in docs/operations.md names every flag of
// its command.
func TestCommandTableNamesEveryFlag(t *testing.T) {
	doc := operationsDoc(t)
	for _, cmd := range []string{"validate", "fmt", "components"} {
		row := regexp.MustCompile("(?m)^\\| `sluice " + cmd + "[ `].*$").FindString(doc)
		if row == "" {
			t.Errorf("docs/operations.md has no row for sluice %s", cmd)
			continue
		}
		for _, f := range commandFlags(t, cmd) {
			if !strings.Contains(row, "--"+f.name) {
				t.Errorf("the row of sluice %s does not name --%s:\n%s", cmd, f.name, row)
			}
		}
	}
}
