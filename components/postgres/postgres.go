// Package postgres implements the postgres_source component: SQL queries run
// on their own schedules against PostgreSQL, each once per interval with a
// timeout, in a read-only transaction, through a small connection pool.
// Scrapes read the latest snapshot and never touch the database.
//
// Reading order:
//
//	postgres.go   arguments, defaults, validation, registration, Build
//	builtin.go    the built-in collectors (postgres_exporter-compatible names)
//	plan.go       arguments resolved into query definitions and a pool config
//	run.go        Run/Update: pools, schedulers, reload
//	query.go      one execution: READ ONLY tx, statement_timeout, rows -> samples
//	store.go      snapshots and the exported Gatherer
//	selfmetrics.go sluice_postgres_* self-metrics
//	secret.go     keeping the DSN out of errors and logs
package postgres

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline"
)

// Name is the component's HCL block type.
const Name = "postgres_source"

// Defaults.
const (
	DefaultMaxConns        = 2
	DefaultApplicationName = "sluice"
	DefaultConnectTimeout  = 5 * time.Second
	DefaultInterval        = 30 * time.Second
	DefaultTimeout         = 10 * time.Second

	// MinInterval is the shortest query interval accepted.
	MinInterval = 100 * time.Millisecond
	// MaxSeriesPerQuery bounds the series one query run may produce (per
	// database); a larger result is an error and keeps the last good values.
	MaxSeriesPerQuery = 10000
)

// Arguments configure a postgres_source.
type Arguments struct {
	// DSN is a libpq connection string or URL. It is a secret: it never
	// appears in logs, errors or the component API.
	DSN             string        `hcl:"dsn" secret:"true"`
	MaxConns        int           `hcl:"max_conns,optional"`
	ApplicationName string        `hcl:"application_name,optional"`
	ConnectTimeout  time.Duration `hcl:"connect_timeout,optional"`
	DefaultInterval time.Duration `hcl:"default_interval,optional"`
	DefaultTimeout  time.Duration `hcl:"default_timeout,optional"`
	// Collectors lists the built-in collectors to enable (see builtin.go).
	Collectors []string `hcl:"collectors,optional"`
	Queries    []Query  `hcl:"query,block"`

	// plan is the arguments resolved for running: the parsed pool config,
	// the query definitions (Provision).
	plan *plan
}

// Query is one `query "NAME"` block.
type Query struct {
	Name string `hcl:"name,label"`
	SQL  string `hcl:"sql"`
	// Interval and Timeout default to the component's default_interval and
	// default_timeout.
	Interval time.Duration `hcl:"interval,optional"`
	Timeout  time.Duration `hcl:"timeout,optional"`
	// Databases, when set, runs the query in each listed database and adds a
	// datname label.
	Databases []string `hcl:"databases,optional"`
	Metrics   []Metric `hcl:"metric,block"`
}

// Metric is one `metric "NAME"` block inside a query: one column of the
// result becomes the value, other columns become labels.
type Metric struct {
	Name         string            `hcl:"name,label"`
	Type         string            `hcl:"type,optional"`
	Help         string            `hcl:"help,optional"`
	Value        string            `hcl:"value"`
	Labels       []string          `hcl:"labels,optional"`
	StaticLabels map[string]string `hcl:"static_labels,optional"`
}

// Exports of a postgres_source.
type Exports struct {
	Metrics prometheus.Gatherer `hcl:"metrics"`
}

// SetDefaults implements pipeline.SetDefaulter.
func (a *Arguments) SetDefaults() {
	*a = Arguments{
		MaxConns:        DefaultMaxConns,
		ApplicationName: DefaultApplicationName,
		ConnectTimeout:  DefaultConnectTimeout,
		DefaultInterval: DefaultInterval,
		DefaultTimeout:  DefaultTimeout,
	}
}

// SetDefaults implements pipeline.SetDefaulter.
func (m *Metric) SetDefaults() { m.Type = "gauge" }

var (
	queryNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_.-]*$`)
)

func checkLabelName(n string) error {
	if !pipeline.ValidLabelName(n) {
		return fmt.Errorf("%q is not a valid label name", n)
	}
	return nil
}

// Validate implements pipeline.Validator for a metric block.
func (m *Metric) Validate() error {
	var errs []error
	if !pipeline.ValidMetricName(m.Name) {
		errs = append(errs, fmt.Errorf("metric %q: not a valid Prometheus metric name", m.Name))
	}
	if _, err := valueType(m.Type); err != nil {
		errs = append(errs, pipeline.ErrorAt("type", fmt.Errorf("metric %q: %w", m.Name, err)))
	}
	if m.Value == "" {
		errs = append(errs, pipeline.ErrorAt("value", fmt.Errorf("metric %q: value must name a result column", m.Name)))
	}
	seen := map[string]bool{}
	for _, l := range m.Labels {
		switch {
		case checkLabelName(l) != nil:
			errs = append(errs, pipeline.ErrorAt("labels", fmt.Errorf("metric %q: %w (label columns become label names)", m.Name, checkLabelName(l))))
		case seen[l]:
			errs = append(errs, pipeline.ErrorAt("labels", fmt.Errorf("metric %q: label column %q listed twice", m.Name, l)))
		case l == m.Value:
			errs = append(errs, pipeline.ErrorAt("labels", fmt.Errorf("metric %q: column %q is the value column; it cannot also be a label", m.Name, l)))
		}
		seen[l] = true
	}
	for _, k := range sortedKeys(m.StaticLabels) {
		if err := checkLabelName(k); err != nil {
			errs = append(errs, pipeline.ErrorAt("static_labels", fmt.Errorf("metric %q: %w", m.Name, err)))
		} else if seen[k] {
			errs = append(errs, pipeline.ErrorAt("static_labels", fmt.Errorf("metric %q: label %q is both a static label and a label column", m.Name, k)))
		}
	}
	return errors.Join(errs...)
}

func valueType(t string) (prometheus.ValueType, error) {
	switch t {
	case "gauge", "":
		return prometheus.GaugeValue, nil
	case "counter":
		return prometheus.CounterValue, nil
	}
	return 0, fmt.Errorf("type must be \"gauge\" or \"counter\", got %q", t)
}

// Validate implements pipeline.Validator for a query block.
func (q *Query) Validate() error {
	var errs []error
	if !queryNameRE.MatchString(q.Name) {
		errs = append(errs, fmt.Errorf("query %q: name must start with a letter or underscore and hold only letters, digits, '_', '.', '-'", q.Name))
	}
	if strings.TrimSpace(q.SQL) == "" {
		errs = append(errs, pipeline.ErrorAt("sql", fmt.Errorf("query %q: sql is empty", q.Name)))
	}
	if q.Interval != 0 && q.Interval < MinInterval {
		errs = append(errs, pipeline.ErrorAt("interval", fmt.Errorf("query %q: interval must be at least %v", q.Name, MinInterval)))
	}
	if len(q.Metrics) == 0 {
		errs = append(errs, fmt.Errorf("query %q: at least one metric block is required", q.Name))
	}
	dbs := map[string]bool{}
	for _, d := range q.Databases {
		if d == "" {
			errs = append(errs, pipeline.ErrorAt("databases", fmt.Errorf("query %q: empty database name", q.Name)))
		} else if dbs[d] {
			errs = append(errs, pipeline.ErrorAt("databases", fmt.Errorf("query %q: database %q listed twice", q.Name, d)))
		}
		dbs[d] = true
	}
	names := map[string]bool{}
	for _, m := range q.Metrics {
		if names[m.Name] {
			errs = append(errs, fmt.Errorf("query %q: metric %q defined twice", q.Name, m.Name))
		}
		names[m.Name] = true
		if len(q.Databases) > 0 && (slices.Contains(m.Labels, "datname") || m.StaticLabels["datname"] != "") {
			errs = append(errs, pipeline.ErrorAt("databases", fmt.Errorf("query %q: metric %q: the datname label is added by databases; do not list it in labels or static_labels", q.Name, m.Name)))
		}
	}
	return errors.Join(errs...)
}

// Validate implements pipeline.Validator.
func (a *Arguments) Validate() error {
	var errs []error
	if strings.TrimSpace(a.DSN) == "" {
		errs = append(errs, pipeline.ErrorAt("dsn", errors.New("dsn is empty")))
	}
	if a.MaxConns < 1 {
		errs = append(errs, pipeline.ErrorAt("max_conns", fmt.Errorf("max_conns must be at least 1, got %d", a.MaxConns)))
	}
	if strings.ContainsAny(a.ApplicationName, "\x00\n") {
		errs = append(errs, pipeline.ErrorAt("application_name", errors.New("application_name must be one line")))
	}
	if a.ConnectTimeout <= 0 {
		errs = append(errs, pipeline.ErrorAt("connect_timeout", errors.New("connect_timeout must be positive")))
	}
	if a.DefaultInterval < MinInterval {
		errs = append(errs, pipeline.ErrorAt("default_interval", fmt.Errorf("default_interval must be at least %v", MinInterval)))
	}
	if a.DefaultTimeout <= 0 {
		errs = append(errs, pipeline.ErrorAt("default_timeout", errors.New("default_timeout must be positive")))
	}

	// Metric names are unique across the component (built-ins included):
	// two sources of one name would make the exported families inconsistent.
	owner := map[string]string{} // metric name -> query or collector
	enabled := map[string]bool{}
	for _, c := range a.Collectors {
		b := builtinByName(c)
		switch {
		case b == nil:
			errs = append(errs, pipeline.ErrorAt("collectors", fmt.Errorf("unknown collector %q%s (known: %s)", c, suggest(c, builtinNames()), strings.Join(builtinNames(), ", "))))
			continue
		case enabled[c]:
			errs = append(errs, pipeline.ErrorAt("collectors", fmt.Errorf("collector %q listed twice", c)))
			continue
		}
		enabled[c] = true
		for _, m := range b.metrics {
			owner[m.name] = "collector " + c
		}
	}
	if _, ok := owner[upMetricName]; !ok {
		owner[upMetricName] = "the component (pg_up is always exported)"
	}
	queries := map[string]bool{}
	for _, q := range a.Queries {
		if enabled[q.Name] {
			errs = append(errs, fmt.Errorf("query %q: the name is taken by the built-in collector of that name", q.Name))
		}
		if queries[q.Name] {
			continue // the decoder reports duplicate blocks
		}
		queries[q.Name] = true
		for _, m := range q.Metrics {
			if o, dup := owner[m.Name]; dup {
				errs = append(errs, fmt.Errorf("query %q: metric %q is already produced by %s", q.Name, m.Name, o))
				continue
			}
			owner[m.Name] = fmt.Sprintf("query %q", q.Name)
		}
	}
	return errors.Join(errs...)
}

// Provision parses the DSN and resolves the arguments into the plan Build
// and Update run, once per load.
func (a *Arguments) Provision(pipeline.ProvisionContext) error {
	p, err := newPlan(*a)
	if errors.Is(err, errInvalidDSN) {
		return pipeline.ErrorAt("dsn", err)
	}
	if err != nil {
		return err
	}
	a.plan = p
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// suggest returns ` (did you mean "x"?)` for a close known name.
func suggest(s string, known []string) string {
	for _, k := range known {
		if strings.Contains(k, s) || strings.Contains(s, k) || strings.TrimPrefix(s, "pg_") == k || strings.TrimPrefix(s, "pg_stat_") == k {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
	}
	return ""
}

func init() {
	pipeline.Register(pipeline.Registration[Arguments, Exports]{
		Name:      Name,
		Stability: pipeline.StabilityBeta,
		Summary:   "runs SQL queries on their own schedules and exposes the results (and postgres_exporter-compatible built-ins) as metrics",
		Build:     build,
		Example: `postgres_source "db" {
  dsn        = env("DATABASE_URL")
  collectors = ["database", "stat_database", "stat_activity", "locks", "replication", "bgwriter"]

  query "orders" {
    sql      = "SELECT status, count(*) AS n FROM orders GROUP BY status"
    interval = "60s"
    timeout  = "10s"
    metric "shop_orders" {
      type   = "gauge"
      help   = "Orders by status."
      value  = "n"
      labels = ["status"]
    }
  }
}`,
	})
}

// Interface guards.
var (
	_ pipeline.Component[Arguments] = (*Component)(nil)
	_ pipeline.HealthReporter       = (*Component)(nil)
	_ pipeline.SetDefaulter         = (*Arguments)(nil)
	_ pipeline.Validator            = (*Arguments)(nil)
	_ pipeline.Provisioner          = (*Arguments)(nil)
	_ pipeline.Validator            = (*Query)(nil)
	_ pipeline.Validator            = (*Metric)(nil)
)
