package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// resultError is a problem with a query's result rather than with the
// database: a missing column, a NULL or non-numeric value, a duplicate
// label set, too many series.
type resultError struct{ msg string }

func (e *resultError) Error() string { return e.msg }

func resultErrorf(format string, args ...any) error {
	return &resultError{msg: fmt.Sprintf(format, args...)}
}

// statementGrace is how long after a run's deadline the client waits for
// the server to end the statement itself. The server's statement_timeout
// fires at the deadline; its error reaches us a round trip later. Were the
// context deadline the same instant, it would win that race: pgx would
// close the connection (sending a cancel request of its own) and the run
// would look like a broken connection. The grace only runs out when the
// server or the network does not answer.
const statementGrace = 2 * time.Second

// execOnce runs q once in database db ("" for the DSN's database), due to
// finish by deadline. It reports whether a failure happened on a connection
// that broke, which is worth one retry on a fresh connection (a server
// restart leaves dead connections in the pool).
//
// The deadline is kept by the server, not by cancelling the context: the
// statement runs with statement_timeout set to the time left, so a slow
// statement is cancelled once, by its own backend, and the connection
// goes back to the pool healthy. The context ends statementGrace later,
// for a server or network that does not answer.
func (r *runner) execOnce(ctx context.Context, q *queryDef, db string, deadline time.Time) (samples []sample, rows int, nulls map[string]int, broken bool, err error) {
	// Waiting for a slot and connecting are ours to time out: no statement
	// runs yet, so there is nothing to cancel on the server.
	wctx, wcancel := context.WithDeadline(ctx, deadline)
	defer wcancel()

	select {
	case r.sem <- struct{}{}:
		defer func() { <-r.sem }()
	case <-wctx.Done():
		return nil, 0, nil, false, fmt.Errorf("waiting for a free connection slot (max_conns): %w", wctx.Err())
	}

	pool, err := r.pools.get(db)
	if err != nil {
		return nil, 0, nil, false, err
	}
	conn, err := pool.Acquire(wctx)
	if err != nil {
		return nil, 0, nil, false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Release()
	defer func() { broken = err != nil && conn.Conn().IsClosed() }()

	left := time.Until(deadline)
	if left < time.Millisecond {
		return nil, 0, nil, false, fmt.Errorf("no time left for the statement after connecting: %w", context.DeadlineExceeded)
	}
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(statementGrace))
	defer cancel()

	major := serverMajor(conn.Conn().PgConn().ParameterStatus("server_version"))
	// One round trip: a READ ONLY transaction whose statements the server
	// itself cancels at the deadline, even if this process goes away.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{BeginQuery: fmt.Sprintf("BEGIN READ ONLY; SET LOCAL statement_timeout = %d", left.Milliseconds())})
	if err != nil {
		return nil, 0, nil, false, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		// The statement may have failed (statement_timeout): ROLLBACK ends
		// the aborted transaction so the connection is clean for the next
		// borrower. It gets its own short deadline: ctx may be done.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = tx.Rollback(rctx)
		rcancel()
	}()

	res, err := tx.Query(ctx, q.sql(major))
	if err != nil {
		return nil, 0, nil, false, err
	}
	defer res.Close()
	samples, rows, nulls, err = collectRows(res, q, db)
	if err != nil {
		return nil, rows, nil, false, err
	}
	return samples, rows, nulls, false, nil
}

type boundMetric struct {
	m      *metricDef
	value  int
	labels []int
}

// collectRows turns a result into samples. A NULL in a value column skips
// that sample only (the row's other metrics are kept), as postgres_exporter
// does: nulls counts them by column. Any other bad value fails the whole
// result: a partial result would make series vanish for the wrong reason.
func collectRows(res pgx.Rows, q *queryDef, db string) (samples []sample, rows int, nulls map[string]int, err error) {
	fds := res.FieldDescriptions()
	if len(fds) == 0 {
		// No row description yet: the statement failed (or returns no
		// columns). Reading the result surfaces the server's error.
		for res.Next() {
		}
		if err := res.Err(); err != nil {
			return nil, 0, nil, err
		}
	}
	cols := map[string]int{}
	dupCols := map[string]bool{}
	for i, fd := range fds {
		if _, dup := cols[fd.Name]; dup {
			dupCols[fd.Name] = true
			continue
		}
		cols[fd.Name] = i
	}
	col := func(m *metricDef, name, role string) (int, error) {
		if dupCols[name] {
			return 0, resultErrorf("metric %s: %s column %q appears more than once in the result", m.name, role, name)
		}
		i, ok := cols[name]
		if !ok {
			return 0, resultErrorf("metric %s: %s column %q is not in the result (columns: %s)", m.name, role, name, columnList(fds))
		}
		return i, nil
	}
	var bound []boundMetric
	for _, m := range q.metrics {
		vi, err := col(m, m.value, "value")
		if err != nil {
			if m.optional {
				if _, ok := cols[m.value]; !ok {
					continue
				}
			}
			return nil, 0, nil, err
		}
		b := boundMetric{m: m, value: vi}
		for _, l := range m.labels {
			li, err := col(m, l, "label")
			if err != nil {
				return nil, 0, nil, err
			}
			b.labels = append(b.labels, li)
		}
		bound = append(bound, b)
	}

	seen := map[string]int{} // metric name + label values -> row
	for res.Next() {
		rows++
		vals, err := res.Values()
		if err != nil {
			return nil, rows, nil, fmt.Errorf("row %d: %w", rows, err)
		}
		for _, b := range bound {
			v, err := toFloat(vals[b.value])
			if errors.Is(err, errNull) {
				if nulls == nil {
					nulls = map[string]int{}
				}
				nulls[b.m.value]++
				continue
			}
			if err != nil {
				return nil, rows, nil, resultErrorf("metric %s: row %d: value column %q: %v", b.m.name, rows, b.m.value, err)
			}
			lvs := make([]string, 0, len(b.labels)+1)
			for j, li := range b.labels {
				lv := labelValue(vals[li])
				// Prometheus refuses such a series at every scrape; a bytea
				// column or a SQL_ASCII database can produce one.
				if !utf8.ValidString(lv) {
					return nil, rows, nil, resultErrorf("metric %s: row %d: label column %q: the value is not valid UTF-8 (convert it in SQL, e.g. encode(col, 'hex'))", b.m.name, rows, b.m.labels[j])
				}
				lvs = append(lvs, lv)
			}
			if len(q.databases) > 0 {
				lvs = append(lvs, db)
			}
			key := b.m.name + "\xff" + strings.Join(lvs, "\xff")
			if first, dup := seen[key]; dup {
				return nil, rows, nil, resultErrorf("metric %s: rows %d and %d have the same labels %s; make the label columns unique (GROUP BY them)", b.m.name, first, rows, labelSet(b.m.labels, lvs))
			}
			seen[key] = rows
			if len(samples) >= MaxSeriesPerQuery {
				return nil, rows, nil, resultErrorf("the result has more than %d series; aggregate it in SQL", MaxSeriesPerQuery)
			}
			samples = append(samples, sample{m: b.m, labelValues: lvs, value: v})
		}
	}
	if err := res.Err(); err != nil {
		return nil, rows, nil, err
	}
	return samples, rows, nulls, nil
}

func columnList(fds []pgconn.FieldDescription) string {
	if len(fds) == 0 {
		return "none"
	}
	names := make([]string, len(fds))
	for i, fd := range fds {
		names[i] = fd.Name
	}
	return strings.Join(names, ", ")
}

func labelSet(names, values []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, v := range values {
		if i > 0 {
			b.WriteByte(',')
		}
		n := "datname"
		if i < len(names) {
			n = names[i]
		}
		fmt.Fprintf(&b, "%s=%q", n, v)
	}
	b.WriteByte('}')
	return b.String()
}

// errNull is a NULL value: collectRows skips the sample.
var errNull = errors.New("is NULL")

// toFloat converts a result value to a sample value.
func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case nil:
		return 0, errNull
	case int64:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case int16:
		return float64(x), nil
	case int8:
		return float64(x), nil
	case int:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case uint32:
		return float64(x), nil
	case uint16:
		return float64(x), nil
	case uint8:
		return float64(x), nil
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case pgtype.Numeric:
		if !x.Valid {
			return 0, errNull
		}
		f, err := x.Float64Value()
		if err != nil || !f.Valid {
			return 0, fmt.Errorf("numeric value out of range")
		}
		return f.Float64, nil
	case time.Time:
		return float64(x.UnixNano()) / 1e9, nil
	case pgtype.Time:
		return float64(x.Microseconds) / 1e6, nil
	case time.Duration:
		return x.Seconds(), nil
	case pgtype.Interval:
		if !x.Valid {
			return 0, errNull
		}
		// Months count as 30 days, as PostgreSQL's EXTRACT(EPOCH ...) does.
		return float64(x.Microseconds)/1e6 + float64(x.Days)*86400 + float64(x.Months)*30*86400, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("text %q is not a number", truncate(x, 40))
		}
		return f, nil
	}
	return 0, fmt.Errorf("a %s value is not numeric", typeName(v))
}

func typeName(v any) string {
	switch v.(type) {
	case []byte:
		return "bytea"
	case map[string]any:
		return "json object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// labelValue converts a result value to a label value; NULL is "".
func labelValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case [16]byte:
		return fmt.Sprintf("%x-%x-%x-%x-%x", x[0:4], x[4:6], x[6:8], x[8:10], x[10:16])
	case pgtype.Numeric:
		if f, err := x.Float64Value(); err == nil && f.Valid {
			return strconv.FormatFloat(f.Float64, 'g', -1, 64)
		}
		return ""
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	}
	return fmt.Sprint(v)
}

// serverMajor parses the server_version parameter ("15.4 (Debian ...)",
// "17beta1") into the major version.
func serverMajor(v string) int {
	end := 0
	for end < len(v) && v[end] >= '0' && v[end] <= '9' {
		end++
	}
	n, _ := strconv.Atoi(v[:end])
	return n
}

// classify maps a run's error to a status.
func classify(err error) string {
	if err == nil {
		return statusSuccess
	}
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return statusTimeout
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "57014" { // query_canceled: statement_timeout
		return statusTimeout
	}
	return statusError
}

// serverAnswered reports whether err came from the PostgreSQL server itself
// (an error response), which means the server was reachable.
func serverAnswered(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}

// isConnError reports whether err means the database could not be reached
// (pg_up 0), as opposed to a query or result problem on a working server.
func isConnError(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var re *resultError
	if errors.As(err, &re) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		c := pgErr.Code
		return strings.HasPrefix(c, "08") || strings.HasPrefix(c, "28") || strings.HasPrefix(c, "57P") ||
			c == "3D000" || c == "53300"
	}
	if classify(err) == statusTimeout {
		return false
	}
	return true
}
