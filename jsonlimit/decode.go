// Package jsonlimit is the one decoding path for JSON from outside the
// agent (webhook deliveries, API responses) into the cty values that
// configuration expressions see. It bounds what a hostile or broken
// document can cost before any value is built: its size, its nesting depth
// (checked by a scan over the bytes, so that nothing recurses on input
// depth), the number of values built and the time spent. And it builds only
// the paths that the expressions read (see Paths): a large document whose
// expressions read a few fields costs little more than its bytes.
package jsonlimit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/zclconf/go-cty/cty"
)

// Defaults, used for a zero field of Limits.
const (
	DefaultMaxDepth  = 64
	DefaultMaxValues = 1_000_000
)

// Limits bound one document. The time limit is the context's deadline.
type Limits struct {
	MaxBytes  int64 // 0: no limit (the caller bounded its read)
	MaxDepth  int   // nesting of arrays and objects; 0: DefaultMaxDepth
	MaxValues int   // cty values built; 0: DefaultMaxValues
}

// Why a document was refused: the reason label of the users' self-metrics.
const (
	ReasonSize    = "too_large" // more bytes than MaxBytes
	ReasonDepth   = "too_deep"  // nested deeper than MaxDepth
	ReasonValues  = "too_many_values"
	ReasonTimeout = "timeout" // the context ended while decoding
	ReasonSyntax  = "syntax"  // not one JSON value
)

// Reasons lists every reason, for self-metrics to start at 0.
var Reasons = []string{ReasonSize, ReasonDepth, ReasonValues, ReasonTimeout, ReasonSyntax}

// Error is a refused document.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ReasonOf is err's reason, or "" when err is not an *Error.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// checkEvery is how many tokens pass between two looks at the context.
const checkEvery = 1024

// Decode decodes one JSON document into a cty value as go-cty's json
// package would (objects, tuples, strings, numbers, bools, null), keeping
// only what keep selects: an unselected object attribute is left out, an
// unselected array element is null (the array keeps its length, so that
// indexes and lengths still read the same). A nil keep builds nothing and
// only checks the document.
func Decode(ctx context.Context, data []byte, lim Limits, keep *Paths) (cty.Value, error) {
	if lim.MaxBytes > 0 && int64(len(data)) > lim.MaxBytes {
		return cty.NilVal, &Error{ReasonSize, fmt.Errorf("JSON document of %d bytes is larger than the limit of %d", len(data), lim.MaxBytes)}
	}
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultMaxDepth
	}
	if lim.MaxValues <= 0 {
		lim.MaxValues = DefaultMaxValues
	}
	if err := checkDepth(data, lim.MaxDepth); err != nil {
		return cty.NilVal, err
	}
	d := &decoder{ctx: ctx, dec: json.NewDecoder(bytes.NewReader(data)), lim: lim}
	d.dec.UseNumber()
	var sel []*Paths
	if keep != nil {
		sel = []*Paths{keep}
	}
	v, err := d.value(sel)
	if err != nil {
		return cty.NilVal, err
	}
	if _, err := d.dec.Token(); err != io.EOF {
		return cty.NilVal, &Error{ReasonSyntax, errors.New("not JSON: more than one value")}
	}
	return v, nil
}

// checkDepth refuses a document nested deeper than max, by one pass over
// its bytes that follows strings (brackets inside them do not count).
// Syntax is the decoder's job; this only has to be right on valid JSON and
// never wrong in the unsafe direction on invalid JSON.
func checkDepth(data []byte, max int) error {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > max {
				return &Error{ReasonDepth, fmt.Errorf("JSON nested deeper than %d levels", max)}
			}
		case ']', '}':
			depth--
		}
	}
	return nil
}

type decoder struct {
	ctx    context.Context
	dec    *json.Decoder
	lim    Limits
	tokens int
	values int
}

func (d *decoder) token() (json.Token, error) {
	d.tokens++
	if d.tokens%checkEvery == 0 {
		if err := d.ctx.Err(); err != nil {
			return nil, &Error{ReasonTimeout, fmt.Errorf("decoding JSON: %w", err)}
		}
	}
	t, err := d.dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, &Error{ReasonSyntax, fmt.Errorf("not JSON: %w", err)}
	}
	return t, nil
}

// kept is whether sel keeps anything; whole is whether it keeps all.
func kept(sel []*Paths) (any, whole bool) {
	for _, p := range sel {
		if p.whole {
			return true, true
		}
	}
	return len(sel) > 0, false
}

// skipValue passes over one value without building it.
type skipValue struct{}

func (skipValue) UnmarshalJSON([]byte) error { return nil }

// value decodes the next value, as selected by sel (any of them).
func (d *decoder) value(sel []*Paths) (cty.Value, error) {
	keep, whole := kept(sel)
	// An array's unselected element is a null placeholder: it counts too.
	if err := d.count(); err != nil {
		return cty.NilVal, err
	}
	if !keep {
		if err := d.skip(); err != nil {
			return cty.NilVal, err
		}
		return cty.NullVal(cty.DynamicPseudoType), nil
	}
	t, err := d.token()
	if err != nil {
		return cty.NilVal, err
	}
	switch t := t.(type) {
	case json.Delim:
		if t == '{' {
			return d.object(sel, whole)
		}
		if t == '[' {
			return d.array(sel, whole)
		}
		return cty.NilVal, &Error{ReasonSyntax, fmt.Errorf("not JSON: unexpected %q", t)}
	case string:
		return cty.StringVal(t), nil
	case json.Number:
		n, err := cty.ParseNumberVal(string(t))
		if err != nil {
			return cty.NilVal, &Error{ReasonSyntax, fmt.Errorf("not JSON: number %.40q: %w", string(t), err)}
		}
		return n, nil
	case bool:
		return cty.BoolVal(t), nil
	case nil:
		return cty.NullVal(cty.DynamicPseudoType), nil
	}
	return cty.NilVal, &Error{ReasonSyntax, fmt.Errorf("not JSON: unexpected token %v", t)}
}

// count counts one value built, against MaxValues.
func (d *decoder) count() error {
	d.values++
	if d.values > d.lim.MaxValues {
		return &Error{ReasonValues, fmt.Errorf("JSON document has more than %d values to read", d.lim.MaxValues)}
	}
	return nil
}

func (d *decoder) skip() error {
	d.tokens++
	if d.tokens%checkEvery == 0 {
		if err := d.ctx.Err(); err != nil {
			return &Error{ReasonTimeout, fmt.Errorf("decoding JSON: %w", err)}
		}
	}
	var sv skipValue
	if err := d.dec.Decode(&sv); err != nil {
		return &Error{ReasonSyntax, fmt.Errorf("not JSON: %w", err)}
	}
	return nil
}

// children is what sel keeps of key k; whole selections keep all.
func children(sel []*Paths, whole bool, k string) []*Paths {
	if whole {
		return allSel
	}
	var out []*Paths
	for _, p := range sel {
		out = p.child(k, out)
	}
	return out
}

// allSel selects everything below a whole value. Never modified.
var allSel = []*Paths{{whole: true}}

func (d *decoder) object(sel []*Paths, whole bool) (cty.Value, error) {
	attrs := map[string]cty.Value{}
	for d.dec.More() {
		t, err := d.token()
		if err != nil {
			return cty.NilVal, err
		}
		k, ok := t.(string)
		if !ok {
			return cty.NilVal, &Error{ReasonSyntax, errors.New("not JSON: an object key is not a string")}
		}
		sub := children(sel, whole, k)
		if len(sub) == 0 {
			if err := d.skip(); err != nil {
				return cty.NilVal, err
			}
			continue
		}
		v, err := d.value(sub)
		if err != nil {
			return cty.NilVal, err
		}
		attrs[k] = v
	}
	if _, err := d.token(); err != nil { // '}'
		return cty.NilVal, err
	}
	return cty.ObjectVal(attrs), nil
}

func (d *decoder) array(sel []*Paths, whole bool) (cty.Value, error) {
	var elems []cty.Value
	for i := 0; d.dec.More(); i++ {
		v, err := d.value(children(sel, whole, strconv.Itoa(i)))
		if err != nil {
			return cty.NilVal, err
		}
		elems = append(elems, v)
	}
	if _, err := d.token(); err != nil { // ']'
		return cty.NilVal, err
	}
	if len(elems) == 0 {
		return cty.EmptyTupleVal, nil
	}
	return cty.TupleVal(elems), nil
}
