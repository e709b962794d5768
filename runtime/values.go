package runtime

// Values that cross from Go into HCL expressions: a component's exports,
// as the cty object its consumers see (statsd_receiver.app.metrics), and
// the capsule type that carries a prometheus.Gatherer through expressions.
//
// An export field may have any type an argument may have (decode.go),
// except nested blocks: string, bool, integers, floats, time.Duration (as
// a duration string, which a duration argument accepts), prometheus.Gatherer,
// and slices, string-keyed maps and pointers of those. Register refuses
// the rest, so every export it accepts can be evaluated.

import (
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zclconf/go-cty/cty"

	"github.com/sluicehq/sluice/internal/schema"
)

// exportsToCty converts an Exports struct into the object consumers see.
// Types were checked by Register; what is left to fail is a value cty
// cannot hold (a NaN).
func exportsToCty(id string, exports any) (cty.Value, error) {
	v := reflect.ValueOf(exports)
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return cty.NilVal, fmt.Errorf("exports must be a struct, got %T", exports)
	}
	fields, err := schema.Fields(v.Type())
	if err != nil {
		return cty.NilVal, err
	}
	out := make(map[string]cty.Value, len(fields))
	for _, f := range fields {
		cv, err := toCty(id, v.Field(f.Index))
		if err != nil {
			return cty.NilVal, fmt.Errorf("export %q: %w", f.Name, err)
		}
		out[f.Name] = cv
	}
	return cty.ObjectVal(out), nil
}

// toCty converts one export value. Slices become tuples and maps objects
// (their elements may differ in type, e.g. a null among gatherers), which
// the decoder assigns to slices and maps again.
func toCty(id string, v reflect.Value) (cty.Value, error) {
	t := v.Type()
	switch {
	case t == schema.GathererType:
		if v.IsNil() {
			return cty.NullVal(schema.CtyGatherer), nil
		}
		return schema.GathererVal(schema.Exported(v.Interface().(prometheus.Gatherer), id)), nil
	case t == schema.DurationType:
		return cty.StringVal(time.Duration(v.Int()).String()), nil
	}
	switch t.Kind() {
	case reflect.String:
		return cty.StringVal(v.String()), nil
	case reflect.Bool:
		return cty.BoolVal(v.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return cty.NumberIntVal(v.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return cty.NumberUIntVal(v.Uint()), nil
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) {
			return cty.NilVal, fmt.Errorf("NaN is not a value expressions can use")
		}
		return cty.NumberFloatVal(f), nil
	case reflect.Pointer:
		if v.IsNil() {
			return cty.NullVal(cty.DynamicPseudoType), nil
		}
		return toCty(id, v.Elem())
	case reflect.Slice:
		if v.Len() == 0 {
			return cty.EmptyTupleVal, nil
		}
		elems := make([]cty.Value, v.Len())
		for i := range elems {
			e, err := toCty(id, v.Index(i))
			if err != nil {
				return cty.NilVal, fmt.Errorf("element %d: %w", i, err)
			}
			elems[i] = e
		}
		return cty.TupleVal(elems), nil
	case reflect.Map:
		if v.Len() == 0 {
			return cty.EmptyObjectVal, nil
		}
		attrs := make(map[string]cty.Value, v.Len())
		for it := v.MapRange(); it.Next(); {
			k := it.Key().String()
			e, err := toCty(id, it.Value())
			if err != nil {
				return cty.NilVal, fmt.Errorf("key %q: %w", k, err)
			}
			attrs[k] = e
		}
		return cty.ObjectVal(attrs), nil
	}
	// Register refuses every other type.
	return cty.NilVal, fmt.Errorf("unsupported type %s", t)
}

// sameExports compares two exports of one component: gatherers by
// identity (a new gatherer is a new input for consumers even if it gathers
// the same), everything else by value.
func sameExports(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if !va.IsValid() || !vb.IsValid() {
		return va.IsValid() == vb.IsValid()
	}
	return sameValue(va, vb)
}

func sameValue(a, b reflect.Value) bool {
	if a.Type() != b.Type() {
		return false
	}
	if a.Type() == schema.GathererType || a.Kind() == reflect.Interface {
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameIdentity(a.Elem(), b.Elem())
	}
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return a.Pointer() == b.Pointer() || sameValue(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() || !sameValue(a.MapIndex(k), bv) {
				return false
			}
		}
		return true
	case reflect.Float32, reflect.Float64:
		return a.Float() == b.Float()
	}
	if a.Comparable() {
		return a.Equal(b)
	}
	return false
}

// sameIdentity compares the dynamic values of two interfaces: pointers by
// address, comparable values with ==; anything else (a function, whose
// code pointer two closures may share) is never the same.
func sameIdentity(a, b reflect.Value) bool {
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Chan, reflect.UnsafePointer:
		return a.Pointer() == b.Pointer()
	}
	if a.Comparable() {
		return a.Equal(b)
	}
	return false
}
