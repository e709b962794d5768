package postgres

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeRows is a query result as pgx hands it over: raw column values in
// text or binary format, decoded by Values the way pgx's own rows do
// (pgx.baseRows.Values), so collectRows can be fuzzed without a server.
type fakeRows struct {
	m    *pgtype.Map
	fds  []pgconn.FieldDescription
	rows [][][]byte // nil: NULL
	i    int
	err  error
}

var _ pgx.Rows = (*fakeRows)(nil)

func (r *fakeRows) Close()                                       {}
func (r *fakeRows) Err() error                                   { return r.err }
func (r *fakeRows) CommandTag() pgconn.CommandTag                { return pgconn.NewCommandTag("SELECT") }
func (r *fakeRows) FieldDescriptions() []pgconn.FieldDescription { return r.fds }
func (r *fakeRows) Scan(...any) error                            { return errors.New("fakeRows: Scan is not used by collectRows") }
func (r *fakeRows) RawValues() [][]byte                          { return r.rows[r.i-1] }
func (r *fakeRows) Conn() *pgx.Conn                              { return nil }
func (r *fakeRows) TypeMap() *pgtype.Map                         { return r.m }

func (r *fakeRows) Next() bool {
	if r.err != nil || r.i >= len(r.rows) {
		return false
	}
	r.i++
	return true
}

func (r *fakeRows) Values() ([]any, error) {
	vals := make([]any, 0, len(r.fds))
	for i, fd := range r.fds {
		buf := r.rows[r.i-1][i]
		if buf == nil {
			vals = append(vals, nil)
			continue
		}
		dt, ok := r.m.TypeForOID(fd.DataTypeOID)
		if !ok { // pgx: unknown types arrive as text or raw bytes
			if fd.Format == pgtype.TextFormatCode {
				vals = append(vals, string(buf))
			} else {
				vals = append(vals, append([]byte(nil), buf...))
			}
			continue
		}
		v, err := dt.Codec.DecodeValue(r.m, fd.DataTypeOID, fd.Format, buf)
		if err != nil {
			r.err = err // pgx: a decoding error ends the result
			return nil, err
		}
		vals = append(vals, v)
	}
	return vals, nil
}

// fuzzOIDs are the column types the fuzzer picks from: the ones toFloat and
// labelValue handle, some they refuse, and one pgx does not know.
var fuzzOIDs = []uint32{
	pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.Float4OID, pgtype.Float8OID,
	pgtype.NumericOID, pgtype.BoolOID, pgtype.TextOID, pgtype.VarcharOID, pgtype.TimestampOID,
	pgtype.TimestamptzOID, pgtype.DateOID, pgtype.TimeOID, pgtype.IntervalOID, pgtype.ByteaOID,
	pgtype.JSONOID, pgtype.JSONBOID, pgtype.UUIDOID, pgtype.OIDOID, pgtype.Int4ArrayOID, 999999,
}

// FuzzCollectRows feeds arbitrary column types, formats and bytes through
// collectRows, the mapping of a result to samples. A result is outside
// input: whatever it holds, collectRows must not panic, and a result it
// accepts must make a scrape that succeeds (no invalid series).
func FuzzCollectRows(f *testing.F) {
	f.Add("v", uint8(1), false, []byte("42"), false, uint8(7), false, []byte("a"), uint8(1))                // int4 text
	f.Add("v", uint8(1), true, []byte{0, 0, 0, 7}, false, uint8(7), false, []byte("a"), uint8(2))           // int4 binary, 2 rows
	f.Add("v", uint8(5), false, []byte("NaN"), false, uint8(7), false, []byte("a"), uint8(1))               // numeric NaN
	f.Add("v", uint8(5), false, []byte("1e400"), false, uint8(7), false, []byte("a"), uint8(1))             // numeric beyond float64
	f.Add("v", uint8(7), false, []byte(" 1.5 "), false, uint8(7), false, []byte("a"), uint8(1))             // text number
	f.Add("v", uint8(7), false, []byte("lots"), false, uint8(7), false, []byte("a"), uint8(1))              // text, not a number
	f.Add("v", uint8(1), false, []byte{}, true, uint8(7), false, []byte("a"), uint8(1))                     // NULL value
	f.Add("v", uint8(13), false, []byte("1 mon 2 days"), false, uint8(14), false, []byte(`\xff`), uint8(1)) // interval; bytea label
	f.Add("v", uint8(1), false, []byte("1"), false, uint8(7), false, []byte{0xff, 0xfe}, uint8(1))          // invalid UTF-8 text label
	f.Add("v", uint8(1), false, []byte("1"), false, uint8(17), false, []byte("1"), uint8(3))                // uuid label that does not parse
	f.Add("k", uint8(1), false, []byte("1"), false, uint8(7), false, []byte("a"), uint8(1))                 // value column missing, k twice
	f.Add("v", uint8(20), true, []byte{1, 2}, false, uint8(20), false, []byte("x"), uint8(1))               // unknown type
	f.Fuzz(func(t *testing.T, valueName string, valueOID uint8, valueBinary bool, value []byte, valueNull bool, labelOID uint8, labelBinary bool, label []byte, nRows uint8) {
		p, err := newPlan(Arguments{
			DSN: "postgres://u@h/db", MaxConns: 1, DefaultInterval: DefaultInterval, DefaultTimeout: DefaultTimeout,
			Queries: []Query{{Name: "fz", SQL: "SELECT", Metrics: []Metric{{Name: "fz_v", Type: "gauge", Value: "v", Labels: []string{"k"}}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		q := p.queries[0]
		format := func(binary bool) int16 {
			if binary {
				return pgtype.BinaryFormatCode
			}
			return pgtype.TextFormatCode
		}
		res := &fakeRows{m: pgtype.NewMap(), fds: []pgconn.FieldDescription{
			{Name: "k", DataTypeOID: fuzzOIDs[int(labelOID)%len(fuzzOIDs)], Format: format(labelBinary)},
			{Name: valueName, DataTypeOID: fuzzOIDs[int(valueOID)%len(fuzzOIDs)], Format: format(valueBinary)},
		}}
		for i := range int(nRows % 4) {
			v := value
			if valueNull {
				v = nil
			} else if v == nil {
				v = []byte{}
			}
			// Rows differ in their label (the last byte), so that several
			// rows can succeed; in binary formats this may not decode.
			res.rows = append(res.rows, [][]byte{append(append([]byte{}, label...), byte('0'+i)), v})
		}
		samples, rows, nulls, err := collectRows(res, q, "")
		if err != nil {
			if samples != nil {
				t.Fatalf("error %v with %d samples: a failed result must yield none", err, len(samples))
			}
			return
		}
		if rows != len(res.rows) || len(samples)+nulls["v"] != rows {
			t.Fatalf("%d rows read, %d samples and %d NULL values skipped, of %d rows", rows, len(samples), nulls["v"], len(res.rows))
		}
		st := newStore()
		st.set(q.key, "", samples)
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(st)
		if _, err := reg.Gather(); err != nil {
			t.Fatalf("an accepted result breaks the scrape: %v", err)
		}
	})
}
