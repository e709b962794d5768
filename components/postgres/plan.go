package postgres

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// metricDef maps one result column to a metric.
type metricDef struct {
	name     string
	help     string
	typ      prometheus.ValueType
	value    string
	labels   []string // result columns
	static   map[string]string
	optional bool // built-ins: a missing column skips the metric
	desc     *prometheus.Desc
}

// queryDef is a query with its defaults applied: a user query block or a
// built-in collector.
type queryDef struct {
	name      string
	sql       func(major int) string
	interval  time.Duration
	timeout   time.Duration
	databases []string
	metrics   []*metricDef
	// key identifies the definition: equal keys mean nothing changed, so
	// a reload keeps the query's scheduler and its last values.
	key string
}

// connSettings are the arguments that shape the pool; a change replaces it.
type connSettings struct {
	dsn            string
	maxConns       int
	appName        string
	connectTimeout time.Duration
}

// plan is Arguments resolved for running.
type plan struct {
	conn          connSettings
	poolCfg       *pgxpool.Config
	redact        redactor
	probeInterval time.Duration
	probeTimeout  time.Duration
	queries       []*queryDef
}

func newPlan(a Arguments) (*plan, error) {
	cfg, err := parsePoolConfig(a)
	if err != nil {
		return nil, err
	}
	p := &plan{
		conn:          connSettings{dsn: a.DSN, maxConns: a.MaxConns, appName: a.ApplicationName, connectTimeout: a.ConnectTimeout},
		poolCfg:       cfg,
		redact:        newRedactor(a.DSN, cfg),
		probeInterval: a.DefaultInterval,
		probeTimeout:  a.defaultTimeout(),
	}
	for _, name := range a.Collectors {
		b := builtinByName(name)
		if b == nil {
			return nil, fmt.Errorf("unknown collector %q", name)
		}
		q := &queryDef{name: b.name, sql: b.sql, interval: a.DefaultInterval, timeout: a.defaultTimeout()}
		for _, m := range b.metrics {
			c := *m
			q.metrics = append(q.metrics, &c)
		}
		p.queries = append(p.queries, q)
	}
	for _, uq := range a.Queries {
		sql := uq.SQL
		q := &queryDef{
			name:      uq.Name,
			sql:       func(int) string { return sql },
			interval:  a.queryInterval(uq),
			timeout:   a.queryTimeout(uq),
			databases: append([]string(nil), uq.Databases...),
		}
		for _, um := range uq.Metrics {
			typ, err := valueType(um.Type)
			if err != nil {
				return nil, fmt.Errorf("query %q: metric %q: %w", uq.Name, um.Name, err)
			}
			q.metrics = append(q.metrics, &metricDef{
				name: um.Name, help: um.Help, typ: typ, value: um.Value,
				labels: append([]string(nil), um.Labels...), static: um.StaticLabels,
			})
		}
		p.queries = append(p.queries, q)
	}
	for _, q := range p.queries {
		for _, m := range q.metrics {
			labels := append([]string(nil), m.labels...)
			if len(q.databases) > 0 {
				labels = append(labels, "datname")
			}
			help := m.help
			if help == "" {
				help = fmt.Sprintf("Column %s of query %s.", m.value, q.name)
			}
			m.desc = prometheus.NewDesc(m.name, help, labels, m.static)
		}
		q.key = q.fingerprint()
	}
	return p, nil
}

func (q *queryDef) fingerprint() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q %q %d %d %q\n", q.name, q.sql(0)+"\x00"+q.sql(17), q.interval, q.timeout, q.databases)
	for _, m := range q.metrics {
		fmt.Fprintf(&b, "%q %q %d %q %q %v %q\n", m.name, m.help, m.typ, m.value, m.labels, m.optional, sortedPairs(m.static))
	}
	sum := sha256.Sum256([]byte(b.String()))
	return q.name + "@" + hex.EncodeToString(sum[:8])
}

func sortedPairs(m map[string]string) []string {
	var out []string
	for _, k := range sortedKeys(m) {
		out = append(out, k+"="+m[k])
	}
	return out
}
