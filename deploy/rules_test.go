package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"go.yaml.in/yaml/v2"

	"github.com/sluicehq/sluice/internal/testing/realpart"
)

// promtool returns the path of Debian's promtool (installed by `make deps`
// with the prometheus package). It skips the test when promtool is missing,
// except under CI=true, where a missing promtool is a failure.
func promtool(t *testing.T) string {
	t.Helper()
	realpart.SkipShort(t, "promtool")
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not found (run `make deps`): %v", err)
		}
		t.Skipf("promtool not found (run `make deps`): %v", err)
	}
	return p
}

const (
	rulesFile     = "prometheus/sluice-rules.yml"
	rulesTestFile = "prometheus/sluice-rules.test.yml"
)

func TestPromtoolCheckRules(t *testing.T) {
	out, err := exec.Command(promtool(t), "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	cmd := exec.Command(promtool(t), "test", "rules", filepath.Base(rulesTestFile))
	cmd.Dir = filepath.Dir(rulesTestFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	src, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.UnmarshalStrict(src, &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return rf
}

// TestEveryAlertIsUnitTested: each alert of the rules file has a promtool
// case in which it fires and (but for the watchdog, which always fires) one
// in which it does not, so an alert added without tests fails the build.
func TestEveryAlertIsUnitTested(t *testing.T) {
	rf := readRules(t)
	src, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(src, &tf); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			if !slices.Contains([]string{"critical", "warning", "info", "none"}, r.Labels["severity"]) {
				t.Errorf("%s: severity %q, want critical, warning, info or none", r.Alert, r.Labels["severity"])
			}
			if !fires[r.Alert] {
				t.Errorf("%s: no promtool case in which it fires", r.Alert)
			}
			if !silent[r.Alert] && r.Alert != "SluiceWatchdog" {
				t.Errorf("%s: no promtool case in which it does not fire", r.Alert)
			}
		}
	}
	if !slices.Contains(alerts, "SluiceWatchdog") {
		t.Error("no SluiceWatchdog alert")
	}
	if len(alerts) < 10 {
		t.Errorf("only %d alerts in %s", len(alerts), rulesFile)
	}
}
