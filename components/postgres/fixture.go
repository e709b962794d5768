package postgres

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluicehq/sluice/pipeline"
)

// The source under `sluice test` (pipeline/fixture.go): a test hands a
// query's result to TakeRows, which turns it into samples exactly as a
// result from PostgreSQL (collectRows) and stores them; Run, the pool and
// the schedules never run. pg_up is 1 once a result has been taken.

var _ pipeline.RowsTaker = (*Component)(nil)

// TakeRows stores a query's result as its latest run would have.
func (c *Component) TakeRows(r pipeline.FixtureRows) error {
	if c.opts.Fixtures == nil {
		return errors.New("postgres_source: fixtures are only taken under sluice test (Options.Fixtures is nil)")
	}
	p := c.currentPlan()
	var q *queryDef
	var names []string
	for _, d := range p.queries {
		names = append(names, d.name)
		if d.name == r.Query {
			q = d
		}
	}
	if q == nil {
		return fmt.Errorf("no query %q (the queries are %v)", r.Query, names)
	}
	if len(q.databases) > 0 && !slices.Contains(q.databases, r.Database) {
		return fmt.Errorf("query %q runs in databases %v: set database to one of them", r.Query, q.databases)
	}
	if len(q.databases) == 0 && r.Database != "" {
		return fmt.Errorf("query %q lists no databases: database must not be set", r.Query)
	}
	for i, row := range r.Rows {
		if len(row) != len(r.Columns) {
			return fmt.Errorf("row %d has %d values for %d columns", i+1, len(row), len(r.Columns))
		}
	}
	samples, rows, nulls, err := collectRows(&fixtureRows{r: r}, q, r.Database)
	if err != nil {
		c.self.count(q.name, classify(err))
		return fmt.Errorf("query %q: %w", r.Query, err)
	}
	c.self.count(q.name, classify(nil))
	c.self.nullValues(q.name, nulls)
	c.store.set(q.key, r.Database, samples)
	c.setUp(true, nil, p.redact)
	c.self.finish(q.name, 0, rows, true, c.opts.Fixtures.Now())
	return nil
}

// fixtureRows is a test's result as pgx.Rows: text columns, values as
// strings (or nil), which collectRows reads through Values.
type fixtureRows struct {
	r pipeline.FixtureRows
	i int
}

func (f *fixtureRows) Close()                        {}
func (f *fixtureRows) Err() error                    { return nil }
func (f *fixtureRows) CommandTag() pgconn.CommandTag { return pgconn.NewCommandTag("SELECT") }
func (f *fixtureRows) FieldDescriptions() []pgconn.FieldDescription {
	fds := make([]pgconn.FieldDescription, len(f.r.Columns))
	for i, name := range f.r.Columns {
		fds[i] = pgconn.FieldDescription{Name: name, DataTypeOID: pgtype.TextOID, Format: pgtype.TextFormatCode}
	}
	return fds
}
func (f *fixtureRows) Next() bool {
	if f.i >= len(f.r.Rows) {
		return false
	}
	f.i++
	return true
}
func (f *fixtureRows) Scan(...any) error {
	return errors.New("postgres_source fixture: Scan is not used by collectRows")
}
func (f *fixtureRows) Values() ([]any, error) {
	row := f.r.Rows[f.i-1]
	vals := make([]any, len(row))
	for i, v := range row {
		if v != nil {
			vals[i] = *v
		}
	}
	return vals, nil
}
func (f *fixtureRows) RawValues() [][]byte {
	row := f.r.Rows[f.i-1]
	raw := make([][]byte, len(row))
	for i, v := range row {
		if v != nil {
			raw[i] = []byte(*v)
		}
	}
	return raw
}
func (f *fixtureRows) Conn() *pgx.Conn      { return nil }
func (f *fixtureRows) TypeMap() *pgtype.Map { return pgtype.NewMap() }

// Under test nothing the source serves depends on the clock (its values
// change only when a test hands it rows).
var _ pipeline.ClockFollower = (*Component)(nil)

// AdvanceTo does nothing: no query runs on a schedule under test.
func (c *Component) AdvanceTo(time.Time) error { return nil }
