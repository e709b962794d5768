package runtime

// assign turns an evaluated cty value into the Go value of an Arguments
// field (decode.go lists the types), checking ranges and formats.

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/sluicehq/sluice/internal/schema"
)

// assign converts val into dst's Go type.
func assign(val cty.Value, dst reflect.Value) error {
	if val.IsNull() {
		return fmt.Errorf("must not be null")
	}
	if !val.IsWhollyKnown() {
		return fmt.Errorf("value is not known")
	}
	t := dst.Type()
	switch {
	case t == schema.GathererType:
		if val.Type() != schema.CtyGatherer {
			return fmt.Errorf("a metrics reference (such as statsd_receiver.NAME.metrics) is required, got %s", val.Type().FriendlyName())
		}
		dst.Set(reflect.ValueOf(*(val.EncapsulatedValue().(*prometheus.Gatherer))))
		return nil
	case t == schema.DurationType:
		s, err := convert.Convert(val, cty.String)
		if err != nil {
			return fmt.Errorf("a duration string such as \"30s\" is required")
		}
		d, err := ParseDuration(s.AsString())
		if err != nil {
			return err
		}
		dst.SetInt(int64(d))
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		if err := assign(val, p.Elem()); err != nil {
			return err
		}
		dst.Set(p)
		return nil
	case reflect.String:
		s, err := convert.Convert(val, cty.String)
		if err != nil {
			return fmt.Errorf("a string is required, got %s", val.Type().FriendlyName())
		}
		dst.SetString(s.AsString())
		return nil
	case reflect.Bool:
		b, err := convert.Convert(val, cty.Bool)
		if err != nil {
			return fmt.Errorf("a bool is required, got %s", val.Type().FriendlyName())
		}
		dst.SetBool(b.True())
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bf, err := number(val)
		if err != nil {
			return err
		}
		i, acc := bf.Int64()
		if acc != big.Exact || dst.OverflowInt(i) {
			return fmt.Errorf("a whole number in range is required, got %s", bf.Text('g', 10))
		}
		dst.SetInt(i)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		bf, err := number(val)
		if err != nil {
			return err
		}
		u, acc := bf.Uint64()
		if acc != big.Exact || bf.Sign() < 0 || dst.OverflowUint(u) {
			return fmt.Errorf("a non-negative whole number in range is required, got %s", bf.Text('g', 10))
		}
		dst.SetUint(u)
		return nil
	case reflect.Float32, reflect.Float64:
		bf, err := number(val)
		if err != nil {
			return err
		}
		f, _ := bf.Float64()
		if math.IsInf(f, 0) || dst.OverflowFloat(f) {
			return fmt.Errorf("number out of range")
		}
		dst.SetFloat(f)
		return nil
	case reflect.Slice:
		ty := val.Type()
		if !ty.IsListType() && !ty.IsTupleType() && !ty.IsSetType() {
			return fmt.Errorf("a list is required, got %s", ty.FriendlyName())
		}
		out := reflect.MakeSlice(t, 0, val.LengthInt())
		i := 0
		for it := val.ElementIterator(); it.Next(); i++ {
			_, ev := it.Element()
			elem := reflect.New(t.Elem()).Elem()
			if err := assign(ev, elem); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
			out = reflect.Append(out, elem)
		}
		dst.Set(out)
		return nil
	case reflect.Map:
		ty := val.Type()
		if !ty.IsMapType() && !ty.IsObjectType() {
			return fmt.Errorf("a map is required, got %s", ty.FriendlyName())
		}
		out := reflect.MakeMapWithSize(t, val.LengthInt())
		for it := val.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			elem := reflect.New(t.Elem()).Elem()
			if err := assign(ev, elem); err != nil {
				return fmt.Errorf("key %q: %w", k.AsString(), err)
			}
			out.SetMapIndex(reflect.ValueOf(k.AsString()).Convert(t.Key()), elem)
		}
		dst.Set(out)
		return nil
	}
	return fmt.Errorf("unsupported type %s", t)
}

func number(val cty.Value) (*big.Float, error) {
	n, err := convert.Convert(val, cty.Number)
	if err != nil {
		return nil, fmt.Errorf("a number is required, got %s", val.Type().FriendlyName())
	}
	return n.AsBigFloat(), nil
}

// ParseDuration accepts Go durations ("1m30s", "250ms") and Prometheus ones
// ("1d", "1w").
func ParseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return 0, fmt.Errorf("duration %q is negative", s)
		}
		return d, nil
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use e.g. \"30s\", \"5m\", \"1h\")", s)
	}
	return time.Duration(d), nil
}
