package runtime

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// exprKey identifies an unevaluated expression for change detection: its
// syntax tree without source ranges, so that a config edit elsewhere in
// the file (which shifts every position after it) leaves it equal. Only
// exported fields are walked: the unexported ones of hclsyntax hold
// evaluation state (AnonSymbolExpr's per-context values and their lock),
// which a running component may be using concurrently. An expression that
// is not native syntax keys by identity, so it always counts as changed:
// a needless Update rather than a missed one.
func exprKey(e hcl.Expression) string {
	if _, ok := e.(hclsyntax.Expression); !ok {
		return fmt.Sprintf("expr %T %p", e, e)
	}
	var b strings.Builder
	writeExprKey(&b, reflect.ValueOf(e), map[uintptr]int{})
	return b.String()
}

var (
	rangeType     = reflect.TypeOf(hcl.Range{})
	posType       = reflect.TypeOf(hcl.Pos{})
	ctyValueType  = reflect.TypeOf(cty.Value{})
	ctyTypeType   = reflect.TypeOf(cty.Type{})
	operationType = reflect.TypeOf(hclsyntax.Operation{})
)

func writeExprKey(b *strings.Builder, v reflect.Value, seen map[uintptr]int) {
	switch t := v.Type(); {
	case t == rangeType || t == posType:
		return
	case t == ctyValueType:
		b.WriteString(v.Interface().(cty.Value).GoString())
		return
	case t == ctyTypeType:
		b.WriteString(v.Interface().(cty.Type).GoString())
		return
	}
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			b.WriteString("nil")
			return
		}
		writeExprKey(b, v.Elem(), seen)
	case reflect.Pointer:
		if v.IsNil() {
			b.WriteString("nil")
			return
		}
		// Operators (OpAdd, OpEqual...) are package-level values whose
		// fields are all unexported: they are told apart by address.
		if v.Type().Elem() == operationType {
			fmt.Fprintf(b, "&%x", v.Pointer())
			return
		}
		// A node met again (a splat's Item is the AnonSymbolExpr its Each
		// starts from) is named by the order it was first met in, not by
		// its address: a new parse of the same text must key the same.
		if n, ok := seen[v.Pointer()]; ok {
			fmt.Fprintf(b, "&#%d", n)
			return
		}
		seen[v.Pointer()] = len(seen)
		b.WriteString("&")
		writeExprKey(b, v.Elem(), seen)
	case reflect.Struct:
		t := v.Type()
		b.WriteString(t.String())
		b.WriteString("{")
		for i := 0; i < t.NumField(); i++ {
			if !t.Field(i).IsExported() {
				continue
			}
			b.WriteString(t.Field(i).Name)
			b.WriteString(":")
			writeExprKey(b, v.Field(i), seen)
			b.WriteString(",")
		}
		b.WriteString("}")
	case reflect.Slice, reflect.Array:
		b.WriteString("[")
		for i := 0; i < v.Len(); i++ {
			writeExprKey(b, v.Index(i), seen)
			b.WriteString(",")
		}
		b.WriteString("]")
	case reflect.String:
		fmt.Fprintf(b, "%q", v.String())
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		fmt.Fprintf(b, "%v", v)
	default:
		// Maps, funcs and channels do not occur in exported fields of
		// hclsyntax expressions; should one appear, identity keeps the
		// comparison conservative (a new parse makes new ones).
		switch v.Kind() {
		case reflect.Map, reflect.Func, reflect.Chan, reflect.UnsafePointer:
			fmt.Fprintf(b, "%s@%x", v.Kind(), v.Pointer())
		default:
			fmt.Fprintf(b, "%s:%v", v.Kind(), v)
		}
	}
}
