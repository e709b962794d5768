package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/internal/testing/pgtest"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// One throwaway server for the package, started by the first test that
// needs it (none under -short); outage tests start their own.
var (
	srvOnce sync.Once
	srv     *pgtest.Server
	srvErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if srv != nil {
		srv.Close()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// server returns the shared server, skipping (or failing under CI) when
// PostgreSQL is not installed.
func server(t *testing.T) *pgtest.Server {
	t.Helper()
	pgtest.SkipShort(t)
	srvOnce.Do(func() { srv, srvErr = pgtest.New(pgtest.Options{}) })
	pgtest.Check(t, srvErr)
	return srv
}

var appSeq atomic.Int64

// uniqueApp returns an application_name no other test uses, to find this
// test's backends in pg_stat_activity.
func uniqueApp(t *testing.T) string {
	return fmt.Sprintf("sluice_test_%d_%s", appSeq.Add(1), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_")))
}

// start builds and runs a postgres_source whose body is the arguments
// after dsn (which points at s).
func start(t *testing.T, s *pgtest.Server, body string, opts ...pipelinetest.Option) (*pipelinetest.Harness, *Component) {
	t.Helper()
	h := pipelinetest.New(t, Name, fmt.Sprintf("dsn = %q\n%s", s.DSN(""), body), opts...)
	h.Start()
	return h, h.Component.(*Component)
}

// value returns the value of the series name{labels} (exactly those labels).
func value(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !sameLabels(m.GetLabel(), labels) {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Untyped != nil:
				return m.GetUntyped().GetValue(), true
			}
		}
	}
	return 0, false
}

// sameLabels compares label sets the way Prometheus does: an empty value
// is an absent label.
func sameLabels(lps []*dto.LabelPair, want map[string]string) bool {
	n := 0
	for _, lp := range lps {
		if lp.GetValue() == "" {
			continue
		}
		n++
		if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
			return false
		}
	}
	return n == len(want)
}

// family returns a gathered family by name.
func family(t *testing.T, g prometheus.Gatherer, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

// seriesOf lists name's series as sorted label strings.
func seriesOf(t *testing.T, g prometheus.Gatherer, name string) []string {
	t.Helper()
	mf := family(t, g, name)
	if mf == nil {
		return nil
	}
	var out []string
	for _, m := range mf.GetMetric() {
		var parts []string
		for _, lp := range m.GetLabel() {
			parts = append(parts, lp.GetName()+"="+lp.GetValue())
		}
		out = append(out, strings.Join(parts, ","))
	}
	sort.Strings(out)
	return out
}

// queries returns sluice_postgres_queries_total{query,status}.
func queries(t *testing.T, h *pipelinetest.Harness, query, status string) float64 {
	t.Helper()
	v, _ := value(t, h.Registry, "sluice_postgres_queries_total", map[string]string{"query": query, "status": status})
	return v
}

// waitQueries waits until the query's status count reaches n.
func waitQueries(t *testing.T, h *pipelinetest.Harness, query, status string, n float64, timeout time.Duration) {
	t.Helper()
	pipelinetest.Eventually(t, timeout, func() bool { return queries(t, h, query, status) >= n },
		"sluice_postgres_queries_total{query=%q,status=%q} >= %v (success=%v error=%v timeout=%v skipped=%v)", query, status, n,
		queries(t, h, query, statusSuccess), queries(t, h, query, statusError), queries(t, h, query, statusTimeout), queries(t, h, query, statusSkipped))
}

// activeCount counts this application's backends running a statement.
func activeCount(t *testing.T, s *pgtest.Server, app string) int {
	t.Helper()
	return queryInt(t, s, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'", app)
}

// queryInt runs a one-value query on a fresh connection.
func queryInt(t *testing.T, s *pgtest.Server, db, sql string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN(db))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func bufferLogger() (*pipelinetest.Buffer, *slog.Logger) {
	b := &pipelinetest.Buffer{}
	return b, slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
