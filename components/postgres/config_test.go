package postgres

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

const okQuery = `
query "q" {
  sql = "SELECT 1 AS one"
  metric "m" { value = "one" }
}`

func TestDefaults(t *testing.T) {
	args, diags := pipelinetest.Decode(t, Name, `dsn = "postgres://localhost/db"`+okQuery)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	a := args.(Arguments)
	if a.MaxConns != 2 || a.ApplicationName != "sluice" || a.DefaultInterval != DefaultInterval || a.DefaultTimeout != DefaultTimeout || a.ConnectTimeout != DefaultConnectTimeout {
		t.Errorf("defaults: %+v", a)
	}
	if a.Queries[0].Metrics[0].Type != "gauge" {
		t.Errorf("metric type default = %q", a.Queries[0].Metrics[0].Type)
	}
	p, err := newPlan(a)
	if err != nil {
		t.Fatal(err)
	}
	if p.queries[0].interval != DefaultInterval || p.queries[0].timeout != DefaultTimeout {
		t.Errorf("query defaults: %v %v", p.queries[0].interval, p.queries[0].timeout)
	}
	if p.poolCfg.MaxConns != 2 || p.poolCfg.ConnConfig.RuntimeParams["application_name"] != "sluice" || p.poolCfg.ConnConfig.ConnectTimeout != DefaultConnectTimeout {
		t.Errorf("pool config: max %d app %q timeout %v", p.poolCfg.MaxConns, p.poolCfg.ConnConfig.RuntimeParams["application_name"], p.poolCfg.ConnConfig.ConnectTimeout)
	}
}

func TestConfigDiagnostics(t *testing.T) {
	const dsn = `dsn = "postgres://localhost/db"` + "\n"
	cases := []struct {
		name, body, want string
	}{
		{"bad type", dsn + `query "q" {
  sql = "SELECT 1 AS one"
  metric "m" {
    type  = "histogram"
    value = "one"
  }
}`, `type must be "gauge" or "counter"`},
		{"value also a label", dsn + `query "q" {
  sql = "SELECT 1 AS one"
  metric "m" {
    value  = "one"
    labels = ["one"]
  }
}`, "cannot also be a label"},
		{"bad label column name", dsn + `query "q" {
  sql = "SELECT 1 AS one"
  metric "m" {
    value  = "one"
    labels = ["my-label"]
  }
}`, "not a valid label name"},
		{"static label clash", dsn + `query "q" {
  sql = "SELECT 1 AS one"
  metric "m" {
    value  = "one"
    labels = ["env"]
    static_labels = { env = "prod" }
  }
}`, "both a static label and a label column"},
		{"bad metric name", dsn + `query "q" {
  sql = "SELECT 1 AS one"
  metric "my-metric" { value = "one" }
}`, "not a valid Prometheus metric name"},
		{"no metric", dsn + `query "q" { sql = "SELECT 1" }`, "at least one metric block"},
		{"empty sql", dsn + `query "q" {
  sql = " "
  metric "m" { value = "one" }
}`, "sql is empty"},
		{"interval too short", dsn + `query "q" {
  sql = "SELECT 1 AS one"
  interval = "10ms"
  metric "m" { value = "one" }
}`, "interval must be at least"},
		{"datname with databases", dsn + `query "q" {
  sql = "SELECT 1 AS one, 'x' AS datname"
  databases = ["a"]
  metric "m" {
    value  = "one"
    labels = ["datname"]
  }
}`, "datname label is added by databases"},
		{"unknown collector", dsn + `collectors = ["pg_locks"]`, `unknown collector "pg_locks" (did you mean "locks"?)`},
		{"duplicate metric across queries", dsn + okQuery + `
query "r" {
  sql = "SELECT 1 AS one"
  metric "m" { value = "one" }
}`, `metric "m" is already produced by query "q"`},
		{"metric clashes with collector", dsn + `collectors = ["locks"]
query "r" {
  sql = "SELECT 1 AS one"
  metric "pg_locks_count" { value = "one" }
}`, "already produced by collector locks"},
		{"pg_up is reserved", dsn + `query "r" {
  sql = "SELECT 1 AS one"
  metric "pg_up" { value = "one" }
}`, "pg_up is always exported"},
		{"query named like a collector", dsn + `collectors = ["locks"]
query "locks" {
  sql = "SELECT 1 AS one"
  metric "x" { value = "one" }
}`, "taken by the built-in collector"},
		{"max_conns", dsn + `max_conns = 0` + okQuery, "max_conns must be at least 1"},
		{"bad duration", dsn + `default_timeout = "soon"` + okQuery, "is not a duration"},
		{"missing dsn", okQuery, `"dsn" is required`},
		{"bad dsn", `dsn = "postgres://user:s3cr3t-pw@host:notaport/db"` + okQuery, "not a valid PostgreSQL connection string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, diags := pipelinetest.Decode(t, Name, c.body)
			if !diags.HasErrors() {
				t.Fatalf("no error; want %q", c.want)
			}
			if !strings.Contains(diags.Error(), c.want) {
				t.Errorf("diagnostics %q lack %q", diags.Error(), c.want)
			}
			if strings.Contains(diags.Error(), "s3cr3t") {
				t.Errorf("a diagnostic shows the password: %s", diags.Error())
			}
		})
	}
}

func TestDiagnosticPointsAtAttribute(t *testing.T) {
	_, diags := pipelinetest.Decode(t, Name, `dsn = "postgres://localhost/db"
query "q" {
  sql = "SELECT 1 AS one"
  metric "m" {
    value = "one"
    type  = "summary"
  }
}`)
	if len(diags) != 1 || diags[0].Subject == nil || diags[0].Subject.Start.Line != 6 {
		t.Fatalf("want one diagnostic on line 6 (type), got %v", diags)
	}
}

func TestBadDSNsNeverEchoed(t *testing.T) {
	for _, dsn := range []string{
		"postgres://user:s3cr3t-pw@host:notaport/db",
		"postgres://user:s3cr3t-pw@[::1/db",
		"host=db password=s3cr3t-pw port=x",
		"host=db password='s3cr3t-pw port=5432",
		"s3cr3t-pw",
		"postgres://user:s3cr3t-pw@host/db?sslmode=bogus",
	} {
		err := (&Arguments{DSN: dsn, MaxConns: 1, ConnectTimeout: time.Second, DefaultInterval: time.Second, DefaultTimeout: time.Second}).Provision(nil)
		if err == nil {
			t.Errorf("%q: no error", dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}

func TestRedactor(t *testing.T) {
	dsn := "postgres://app:s3cr3t-pw@db.internal:5432/shop"
	p, err := newPlan(Arguments{DSN: dsn, MaxConns: 1, ConnectTimeout: time.Second, DefaultInterval: time.Second, DefaultTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []error{
		errors.New("failed to connect to `user=app database=shop`: dial error"),
		errors.New("something about " + dsn),
		errors.New("password s3cr3t-pw rejected"),
		&pgconn.ParseConfigError{ConnString: dsn},
	} {
		if got := p.redact.Error(e); strings.Contains(got, "s3cr3t") || strings.Contains(got, "user=app") {
			t.Errorf("redact(%q) = %q", e, got)
		}
	}
}

func TestToFloat(t *testing.T) {
	good := map[any]float64{int64(3): 3, int32(-2): -2, float64(1.5): 1.5, true: 1, false: 0, "  7.25 ": 7.25, time.Unix(10, 0): 10}
	for in, want := range good {
		if got, err := toFloat(in); err != nil || got != want {
			t.Errorf("toFloat(%#v) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []any{nil, "abc", []byte{1}, map[string]any{}} {
		if _, err := toFloat(in); err == nil {
			t.Errorf("toFloat(%#v): no error", in)
		}
	}
	if serverMajor("15.4 (Debian 15.4-1)") != 15 || serverMajor("17beta1") != 17 || serverMajor("") != 0 {
		t.Error("serverMajor")
	}
}
