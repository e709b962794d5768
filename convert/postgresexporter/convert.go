// Package postgresexporter turns postgres_exporter's custom queries file
// (the --extend.query-path YAML) and its collector choice into a
// postgres_source with the same metric names, labels and types, and a
// metrics_sink where postgres_exporter served /metrics.
//
// The file is read as postgres_exporter v0.11 (Debian's
// prometheus-postgres-exporter) reads it: each top-level key is a
// namespace; each column listed under metrics is a LABEL, a COUNTER or
// GAUGE named NAMESPACE_COLUMN, or something Sluice cannot express, which
// becomes a comment and a warning.
package postgresexporter

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v2"

	"github.com/sluicehq/sluice/convert/hclout"
)

// Options are the command line of `sluice convert postgres_exporter`.
type Options struct {
	// Queries is the content of the queries file; QueriesPath its name,
	// for messages.
	Queries     []byte
	QueriesPath string
	// Collectors are postgres_exporter's collectors (or default metric
	// namespaces) to carry over, e.g. "database", "pg_stat_database".
	Collectors []string
	// DSNEnv is the environment variable holding the DSN; postgres_exporter
	// reads DATA_SOURCE_NAME.
	DSNEnv string
	// ListenAddress is postgres_exporter's --web.listen-address (":9187").
	ListenAddress string
}

// Result is the converted configuration and what did not convert.
type Result struct {
	HCL      []byte
	Warnings []string
}

// userQuery is one namespace of the queries file, with the fields
// postgres_exporter v0.11 reads.
type userQuery struct {
	Query        string          `yaml:"query"`
	Metrics      []yaml.MapSlice `yaml:"metrics"`
	Master       bool            `yaml:"master"`
	CacheSeconds uint64          `yaml:"cache_seconds"`
	RunOnServer  string          `yaml:"runonserver"`
}

type columnOptions struct {
	Usage         string             `yaml:"usage"`
	Description   string             `yaml:"description"`
	MetricMapping map[string]float64 `yaml:"metric_mapping"`
	PGVersion     string             `yaml:"pg_version"`
}

// collectorNames maps postgres_exporter's collector and default-metric
// names to postgres_source collectors; collectorMetric says which metric
// names each of those produces (a query producing one of them is left out,
// as the component refuses a name produced twice).
var collectorNames = map[string]string{
	"database": "database", "pg_database": "database",
	"stat_database": "stat_database", "pg_stat_database": "stat_database",
	"stat_activity": "stat_activity", "pg_stat_activity": "stat_activity",
	"locks": "locks", "pg_locks": "locks",
	"replication": "replication", "pg_replication": "replication",
	"bgwriter": "bgwriter", "stat_bgwriter": "bgwriter", "pg_stat_bgwriter": "bgwriter",
}

func collectorMetric(collector, name string) bool {
	switch collector {
	case "database":
		return name == "pg_database_size_bytes"
	case "stat_database":
		return strings.HasPrefix(name, "pg_stat_database_")
	case "stat_activity":
		return strings.HasPrefix(name, "pg_stat_activity_")
	case "locks":
		return strings.HasPrefix(name, "pg_locks_")
	case "replication":
		return name == "pg_replication_lag" || name == "pg_replication_is_replica"
	case "bgwriter":
		return strings.HasPrefix(name, "pg_stat_bgwriter_")
	}
	return false
}

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// maxQueriesFile bounds the file: a queries file is a few KiB.
const maxQueriesFile = 4 << 20

// Convert returns the postgres_source equivalent to o.
func Convert(o Options) (Result, error) {
	if len(o.Queries) > maxQueriesFile {
		return Result{}, fmt.Errorf("%s: %d bytes, more than the %d a queries file may have", o.QueriesPath, len(o.Queries), maxQueriesFile)
	}
	if !utf8.Valid(o.Queries) {
		return Result{}, fmt.Errorf("%s: not valid UTF-8", o.QueriesPath)
	}
	var queries map[string]userQuery
	if err := yaml.Unmarshal(o.Queries, &queries); err != nil {
		// The YAML library quotes the file in its messages; keep the kind
		// of error only, as the statsd mapping file's errors do.
		return Result{}, fmt.Errorf("%s: not a postgres_exporter queries file: %s", o.QueriesPath, firstLine(err.Error()))
	}
	if o.DSNEnv == "" {
		o.DSNEnv = "DATA_SOURCE_NAME"
	}
	if !labelNameRE.MatchString(o.DSNEnv) {
		return Result{}, fmt.Errorf("--dsn-env %q is not an environment variable name", o.DSNEnv)
	}
	if o.ListenAddress == "" {
		o.ListenAddress = ":9187"
	}
	var res Result
	var w hclout.Writer
	warn := func(msg string) {
		res.Warnings = append(res.Warnings, msg)
		w.Comment("NOT CONVERTED: " + msg)
	}

	var collectors []string
	seenCollector := map[string]bool{}
	var unknownCollectors []string
	for _, c := range o.Collectors {
		for _, name := range strings.Split(c, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			sc, ok := collectorNames[name]
			if !ok {
				unknownCollectors = append(unknownCollectors, name)
				continue
			}
			if !seenCollector[sc] {
				seenCollector[sc] = true
				collectors = append(collectors, sc)
			}
		}
	}

	w.Comment("Converted by `sluice convert postgres_exporter` from " + o.QueriesPath + ".")
	w.Comment("postgres_exporter ran these queries at each scrape; postgres_source runs each on its own")
	w.Comment("interval (cache_seconds where the file set it, else default_interval) and scrapes read the last result.")
	w.Line("")
	w.Line(`postgres_source "postgres" {`)
	w.Attr("dsn", "env("+hclout.Quote(o.DSNEnv)+")")
	if len(collectors) > 0 {
		w.Attr("collectors", hclout.QuoteList(collectors))
	}
	for _, name := range unknownCollectors {
		warn(fmt.Sprintf("collector %q: postgres_source has no built-in equivalent; add its SQL as a query block", name))
	}

	names := make([]string, 0, len(queries))
	for n := range queries {
		names = append(names, n)
	}
	sort.Strings(names)
	produced := map[string]string{"pg_up": "the component itself"}
	for _, ns := range names {
		q := queries[ns]
		w.Line("")
		if !metricNameRE.MatchString(ns) {
			warn(fmt.Sprintf("namespace %q: not a valid metric name prefix; left out", ns))
			continue
		}
		if strings.TrimSpace(q.Query) == "" {
			warn(fmt.Sprintf("namespace %s: no query (postgres_exporter would run SELECT * FROM %s); left out", ns, ns))
			continue
		}
		cols, err := columns(q.Metrics)
		if err != nil {
			return Result{}, fmt.Errorf("%s: namespace %s: %w", o.QueriesPath, ns, err)
		}
		var labels []string
		for _, c := range cols {
			if c.usage == "LABEL" {
				if !labelNameRE.MatchString(c.name) || strings.HasPrefix(c.name, "__") {
					return Result{}, fmt.Errorf("%s: namespace %s: label column %q is not a valid label name", o.QueriesPath, ns, c.name)
				}
				labels = append(labels, c.name)
			}
		}

		var body hclout.Writer
		var metrics int
		for _, c := range cols {
			name := ns + "_" + c.name
			switch c.usage {
			case "LABEL", "DISCARD":
				continue
			case "COUNTER", "GAUGE":
			case "DURATION":
				// postgres_exporter 0.11 reads a queries file's DURATION
				// column as a number (its duration parsing applies to the
				// built-in maps only): a text duration gives no series, a
				// number is exported unchanged as NAME_milliseconds. Here a
				// text value would fail the whole query, so it is left to
				// the user.
				warn(fmt.Sprintf("%s: %s is DURATION: postgres_exporter exports it as %s_milliseconds only when the column is a number (a text duration gives no series); if it is, add a gauge metric %q with value %q (a text value would fail the whole query here)", ns, c.name, name, name+"_milliseconds", c.name))
				continue
			case "MAPPEDMETRIC":
				// Likewise: metric_mapping is ignored in a queries file and
				// the column read as a number.
				warn(fmt.Sprintf("%s: %s is MAPPEDMETRIC: postgres_exporter ignores metric_mapping in a queries file and exports %s only when the column is a number (text gives no series); map the text in the SQL (CASE ... END) and add a gauge metric %q", ns, c.name, name, name))
				continue
			case "HISTOGRAM":
				warn(fmt.Sprintf("%s: %s is HISTOGRAM; postgres_source exports gauges and counters only (the %s_bucket, _sum and _count columns could be exported as gauges)", ns, c.name, c.name))
				continue
			default:
				warn(fmt.Sprintf("%s: %s has usage %q, which postgres_exporter treats as DISCARD", ns, c.name, c.usage))
				continue
			}
			if !metricNameRE.MatchString(name) {
				warn(fmt.Sprintf("%s: %s: %q is not a valid metric name; left out", ns, c.name, name))
				continue
			}
			if by, dup := produced[name]; dup {
				warn(fmt.Sprintf("%s: %s: metric %s is also produced by %s; left out", ns, c.name, name, by))
				continue
			}
			if coll := producedByCollector(collectors, name); coll != "" {
				warn(fmt.Sprintf("%s: %s: metric %s is also produced by the %s collector; left out", ns, c.name, name, coll))
				continue
			}
			produced[name] = "namespace " + ns
			metrics++
			body.Line(fmt.Sprintf("metric %s {", hclout.Quote(name)))
			body.Attr("type", hclout.Quote(strings.ToLower(c.usage)))
			if c.opts.Description != "" {
				body.Attr("help", hclout.Quote(c.opts.Description))
			}
			body.Attr("value", hclout.Quote(c.name))
			if len(labels) > 0 {
				body.Attr("labels", hclout.QuoteList(labels))
			}
			body.Line("}")
			if c.opts.PGVersion != "" {
				body.Comment(fmt.Sprintf("pg_version %q of %s is ignored in a queries file by postgres_exporter too.", c.opts.PGVersion, c.name))
			}
		}
		if metrics == 0 {
			warn(fmt.Sprintf("namespace %s: no column converts to a metric; left out", ns))
			continue
		}
		w.Line(fmt.Sprintf("query %s {", hclout.Quote(ns)))
		writeSQL(&w, q.Query)
		if q.CacheSeconds > 0 {
			w.Attr("interval", hclout.Quote(strconv.FormatUint(q.CacheSeconds, 10)+"s"))
		}
		if q.Master {
			w.Comment("master: true — postgres_source runs every query once, against dsn, as postgres_exporter does with one DSN.")
		}
		if q.RunOnServer != "" {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: runonserver %q: postgres_source runs the query on any server version", ns, q.RunOnServer))
			w.Comment(fmt.Sprintf("NOT CONVERTED: runonserver %q: postgres_source runs the query on any server version.", q.RunOnServer))
		}
		w.Raw(indent(string(body.Bytes()), "    "))
		w.Line("}")
	}
	w.Line("}")
	w.Line("")
	w.Comment("postgres_exporter's /metrics. It also served go_*, process_* and pg_exporter_* metrics:")
	w.Comment("the agent's own metrics are on the agent's /metrics.")
	w.Line(`metrics_sink "postgres" {`)
	w.Attr("inputs", "[postgres_source.postgres.metrics]")
	w.Attr("listen", hclout.Quote(o.ListenAddress))
	w.Attr("openmetrics", "false")
	w.Line("}")
	res.HCL = w.Bytes()
	return res, nil
}

type column struct {
	name  string
	usage string
	opts  columnOptions
}

// columns reads the metrics list: each entry is a one-key map from the
// column name to its options.
func columns(entries []yaml.MapSlice) ([]column, error) {
	var out []column
	seen := map[string]bool{}
	for _, e := range entries {
		for _, item := range e {
			name, ok := item.Key.(string)
			if !ok || name == "" {
				return nil, fmt.Errorf("a metrics entry's key is not a column name")
			}
			raw, err := yaml.Marshal(item.Value)
			if err != nil {
				return nil, fmt.Errorf("column %s: %w", name, err)
			}
			var opts columnOptions
			if err := yaml.Unmarshal(raw, &opts); err != nil {
				return nil, fmt.Errorf("column %s: %s", name, firstLine(err.Error()))
			}
			if seen[name] {
				return nil, fmt.Errorf("column %s is listed twice", name)
			}
			seen[name] = true
			out = append(out, column{name: name, usage: opts.Usage, opts: opts})
		}
	}
	return out, nil
}

func producedByCollector(collectors []string, name string) string {
	for _, c := range collectors {
		if collectorMetric(c, name) {
			return c
		}
	}
	return ""
}

// writeSQL writes the sql attribute: a heredoc for multi-line SQL (with a
// delimiter that no line of the SQL is), a quoted string otherwise.
func writeSQL(w *hclout.Writer, sql string) {
	sql = strings.TrimSpace(strings.ReplaceAll(sql, "\r\n", "\n"))
	if !strings.Contains(sql, "\n") {
		w.Attr("sql", hclout.Quote(sql))
		return
	}
	delim := "SQL"
	for i := 0; strings.Contains("\n"+sql+"\n", "\n"+delim+"\n") || containsLineTrimmed(sql, delim); i++ {
		delim = "SQL" + strconv.Itoa(i)
	}
	w.Line("sql = <<-" + delim)
	w.Raw(indent(dedent(hclout.EscapeTemplate(sql))+"\n", "      "))
	w.Line(delim)
}

func containsLineTrimmed(s, delim string) bool {
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == delim {
			return true
		}
	}
	return false
}

// dedent removes the indentation common to every non-blank line.
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	common := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if common < 0 || n < common {
			common = n
		}
	}
	for i, l := range lines {
		if len(l) >= common && common > 0 {
			lines[i] = l[common:]
		} else {
			lines[i] = strings.TrimLeft(l, " \t")
		}
	}
	return strings.Join(lines, "\n")
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
