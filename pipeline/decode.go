package pipeline

// Decoding of a block body into an Arguments struct.
//
// Field tags, as in gohcl:
//
//	`hcl:"name"`           required attribute
//	`hcl:"name,optional"`  optional attribute (keeps its SetDefaults value when absent)
//	`hcl:"name,block"`     nested block: struct (exactly one), *struct (at most one), []struct (any)
//	`hcl:"name,label"`     a label of a nested block (only in a nested block's struct)
//
// A field tagged `secret:"true"` (a DSN, a token) is never echoed: its
// value is redacted from every rendered diagnostic, and so is the value of
// any attribute whose name is close to it (see redact.go).
//
// Attribute types: string, bool, signed/unsigned integers, floats,
// time.Duration (a string such as "10s", "1m30s" or "1d"),
// prometheus.Gatherer (a reference such as statsd_receiver.app.metrics),
// slices and string-keyed maps of those, and pointers to them.
//
// A field of type hcl.Expression (with an ordinary tag, `hcl:"name"` or
// `hcl:"name,optional"`, as in gohcl) receives the attribute's expression
// unevaluated: for a component that evaluates it later against data of its
// own (an HTTP response body, a row), with variables and functions it
// chooses. It is left nil when an optional attribute is absent. Its
// variables are not references to components: the loader neither resolves
// them nor orders the graph by them, so a component should check in
// Validate that they name only what it will provide (Variables() of the
// expression). Only Arguments may have expression fields, not slices, maps
// or pointers of them, and not Exports. For change detection an expression
// counts as its syntax tree without source positions (exprKey): moving it,
// re-indenting it or adding a comment around it is no change; editing it
// is.
//
// gohcl cannot decode into interfaces (it needs a cty type for every field),
// which is why Sluice has its own decoder. Decoding also returns the
// evaluated block as one cty value: the controller compares it with the
// running one to decide whether a component changed. Gatherers compare by
// identity, so a component whose upstream is unchanged compares equal.

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

type fieldKind int

const (
	kindAttr fieldKind = iota
	kindBlock
	kindLabel
)

type fieldInfo struct {
	name     string
	kind     fieldKind
	required bool
	secret   bool
	index    int
	typ      reflect.Type
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	exprType     = reflect.TypeOf((*hcl.Expression)(nil)).Elem()
)

func structFields(t reflect.Type) ([]fieldInfo, error) {
	var out []fieldInfo
	seen := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("hcl")
		if !ok {
			continue
		}
		if !f.IsExported() {
			return nil, fmt.Errorf("field %s has an hcl tag but is not exported", f.Name)
		}
		name, opt, _ := strings.Cut(tag, ",")
		fi := fieldInfo{name: name, index: i, typ: f.Type, kind: kindAttr, required: true, secret: f.Tag.Get("secret") == "true"}
		switch opt {
		case "":
		case "optional":
			fi.required = false
		case "block":
			fi.kind = kindBlock
		case "label":
			fi.kind = kindLabel
		default:
			return nil, fmt.Errorf("field %s: unknown hcl tag option %q", f.Name, opt)
		}
		if !validName(name) {
			return nil, fmt.Errorf("field %s: invalid hcl name %q", f.Name, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("field %s: hcl name %q used twice", f.Name, name)
		}
		seen[name] = true
		out = append(out, fi)
	}
	return out, nil
}

// checkSchema verifies at registration time that a struct can be decoded.
func checkSchema(t reflect.Type) error {
	fields, err := structFields(t)
	if err != nil {
		return err
	}
	for _, f := range fields {
		sf := t.Field(f.index)
		switch f.kind {
		case kindAttr:
			if f.typ == exprType {
				continue // kept unevaluated
			}
			if err := checkAttrType(f.typ); err != nil {
				return fmt.Errorf("field %s (attribute %q) of type %s cannot be decoded: %w", sf.Name, f.name, f.typ, err)
			}
		case kindBlock:
			bt := blockElem(f.typ)
			if bt == nil {
				return fmt.Errorf("field %s (block %q): type %s is not a struct, *struct or []struct", sf.Name, f.name, f.typ)
			}
			if err := checkSchema(bt); err != nil {
				return fmt.Errorf("field %s (block %q): %w", sf.Name, f.name, err)
			}
		case kindLabel:
			if f.typ.Kind() != reflect.String {
				return fmt.Errorf("field %s (label %q) of type %s: a label must be a string", sf.Name, f.name, f.typ)
			}
		}
	}
	return nil
}

func checkAttrType(t reflect.Type) error {
	switch {
	case t == durationType, t == gathererType:
		return nil
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return nil
	case reflect.Slice, reflect.Pointer:
		return checkAttrType(t.Elem())
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return fmt.Errorf("map keys must be strings")
		}
		return checkAttrType(t.Elem())
	}
	return fmt.Errorf("unsupported type %s", t)
}

func blockElem(t reflect.Type) reflect.Type {
	switch {
	case t.Kind() == reflect.Struct:
		return t
	case (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice) && t.Elem().Kind() == reflect.Struct:
		return t.Elem()
	}
	return nil
}

// bodySchema returns the HCL schema of a struct and the names of its labels.
func bodySchema(t reflect.Type) (*hcl.BodySchema, []string) {
	fields, _ := structFields(t) // checked at registration
	s := &hcl.BodySchema{}
	var labels []string
	for _, f := range fields {
		switch f.kind {
		case kindAttr:
			s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: f.name, Required: f.required})
		case kindBlock:
			_, bl := bodySchema(blockElem(f.typ))
			s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: f.name, LabelNames: bl})
		case kindLabel:
			labels = append(labels, f.name)
		}
	}
	return s, labels
}

// secretRanges returns the source ranges of the attributes of body (and of
// its nested blocks) whose fields are tagged secret.
func secretRanges(body hcl.Body, t reflect.Type) []hcl.Range {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	fields, _ := structFields(t)
	var out []hcl.Range
	for _, f := range fields {
		switch {
		case f.kind == kindAttr && f.secret:
			if a, ok := sb.Attributes[f.name]; ok {
				out = append(out, a.Range())
			}
		case f.kind == kindBlock:
			for _, b := range sb.Blocks {
				if b.Type == f.name {
					out = append(out, secretRanges(b.Body, blockElem(f.typ))...)
				}
			}
		}
	}
	return out
}

// decodeBody decodes body into target (an addressable struct), returning the
// evaluated body as a cty object for change detection.
func decodeBody(body hcl.Body, ctx *hcl.EvalContext, target reflect.Value) (cty.Value, hcl.Diagnostics) {
	if d, ok := target.Addr().Interface().(SetDefaulter); ok {
		d.SetDefaults()
	}
	schema, _ := bodySchema(target.Type())
	content, diags := body.Content(schema)
	fields, _ := structFields(target.Type())
	evaluated := map[string]cty.Value{}
	for _, f := range fields {
		dst := target.Field(f.index)
		switch f.kind {
		case kindAttr:
			attr, ok := content.Attributes[f.name]
			if !ok {
				continue
			}
			if d := duplicateKeys(attr.Expr, ctx); d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			if f.typ == exprType {
				dst.Set(reflect.ValueOf(&attr.Expr).Elem())
				evaluated[f.name] = cty.StringVal(exprKey(attr.Expr))
				continue
			}
			val, d := attr.Expr.Value(ctx)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			if val.IsNull() {
				if f.required {
					diags = append(diags, attrDiag(attr, "must not be null"))
				}
				continue
			}
			if err := assign(val, dst); err != nil {
				diags = append(diags, attrDiag(attr, err.Error()))
				continue
			}
			evaluated[f.name] = val
		case kindBlock:
			var blocks hcl.Blocks
			for _, b := range content.Blocks {
				if b.Type == f.name {
					blocks = append(blocks, b)
				}
			}
			v, d := decodeBlocks(f, blocks, body, ctx, dst)
			diags = append(diags, d...)
			evaluated[f.name] = v
		}
	}
	return cty.ObjectVal(evaluated), diags
}

func decodeBlocks(f fieldInfo, blocks hcl.Blocks, parent hcl.Body, ctx *hcl.EvalContext, dst reflect.Value) (cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	elemT := blockElem(f.typ)
	switch f.typ.Kind() {
	case reflect.Struct, reflect.Pointer:
		if len(blocks) > 1 {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Duplicate %s block", f.name),
				Detail:   fmt.Sprintf("Only one %s block is allowed here; another was defined at %s.", f.name, blocks[0].DefRange),
				Subject:  blocks[1].DefRange.Ptr(),
			})
			return cty.NilVal, diags
		}
		if len(blocks) == 0 {
			if f.typ.Kind() == reflect.Struct {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  fmt.Sprintf("Missing %s block", f.name),
					Detail:   fmt.Sprintf("A %s block is required here.", f.name),
					Subject:  parent.MissingItemRange().Ptr(),
				})
			}
			return cty.EmptyTupleVal, diags
		}
		elem := reflect.New(elemT).Elem()
		v, d := decodeBlock(blocks[0], ctx, elem)
		diags = append(diags, d...)
		if f.typ.Kind() == reflect.Struct {
			dst.Set(elem)
		} else {
			dst.Set(elem.Addr())
		}
		return cty.TupleVal([]cty.Value{v}), diags
	default: // slice
		slice := reflect.MakeSlice(f.typ, 0, len(blocks))
		vals := make([]cty.Value, 0, len(blocks))
		firstByLabels := map[string]*hcl.Block{}
		for _, b := range blocks {
			if len(b.Labels) > 0 {
				key := strings.Join(b.Labels, "\x00")
				if first, dup := firstByLabels[key]; dup {
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  fmt.Sprintf("Duplicate %s %q block", f.name, strings.Join(b.Labels, `" "`)),
						Detail:   fmt.Sprintf("Each %s block needs a unique name; this one is already defined at %s.", f.name, first.DefRange),
						Subject:  b.DefRange.Ptr(),
					})
					continue
				}
				firstByLabels[key] = b
			}
			elem := reflect.New(elemT).Elem()
			v, d := decodeBlock(b, ctx, elem)
			diags = append(diags, d...)
			slice = reflect.Append(slice, elem)
			vals = append(vals, v)
		}
		dst.Set(slice)
		if len(vals) == 0 {
			return cty.EmptyTupleVal, diags
		}
		return cty.TupleVal(vals), diags
	}
}

func decodeBlock(b *hcl.Block, ctx *hcl.EvalContext, elem reflect.Value) (cty.Value, hcl.Diagnostics) {
	fields, _ := structFields(elem.Type())
	li := 0
	labels := map[string]cty.Value{}
	for _, f := range fields {
		if f.kind == kindLabel && li < len(b.Labels) {
			elem.Field(f.index).SetString(b.Labels[li])
			labels[f.name] = cty.StringVal(b.Labels[li])
			li++
		}
	}
	v, diags := decodeBody(b.Body, ctx, elem)
	if !diags.HasErrors() {
		if vd, ok := elem.Addr().Interface().(Validator); ok {
			diags = append(diags, validationDiags(vd.Validate(), b.Body, b.DefRange)...)
		}
	}
	return cty.TupleVal([]cty.Value{cty.ObjectVal(labels), v}), diags
}

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
	writeExprKey(&b, reflect.ValueOf(e), map[uintptr]bool{})
	return b.String()
}

var (
	rangeType     = reflect.TypeOf(hcl.Range{})
	posType       = reflect.TypeOf(hcl.Pos{})
	ctyValueType  = reflect.TypeOf(cty.Value{})
	ctyTypeType   = reflect.TypeOf(cty.Type{})
	operationType = reflect.TypeOf(hclsyntax.Operation{})
)

func writeExprKey(b *strings.Builder, v reflect.Value, seen map[uintptr]bool) {
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
		if v.Type().Elem() == operationType || seen[v.Pointer()] {
			fmt.Fprintf(b, "&%x", v.Pointer())
			return
		}
		seen[v.Pointer()] = true
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

// duplicateKeys reports keys given twice in an object expression anywhere
// in expr ({ a = "x", a = "y" }): HCL keeps the last silently, which hides
// a mistake. Keys are evaluated where they can be (literals, bare words,
// expressions of the context); a key that depends on a for expression's
// variables is not known here and is not checked.
func duplicateKeys(expr hcl.Expression, ctx *hcl.EvalContext) hcl.Diagnostics {
	se, ok := expr.(hclsyntax.Expression)
	if !ok {
		return nil
	}
	var diags hcl.Diagnostics
	_ = hclsyntax.VisitAll(se, func(n hclsyntax.Node) hcl.Diagnostics {
		obj, ok := n.(*hclsyntax.ObjectConsExpr)
		if !ok {
			return nil
		}
		first := map[string]hcl.Range{}
		for _, item := range obj.Items {
			kv, kd := item.KeyExpr.Value(ctx)
			if kd.HasErrors() || !kv.IsWhollyKnown() || kv.IsNull() {
				continue
			}
			ks, err := convert.Convert(kv, cty.String)
			if err != nil {
				continue // reported when the object is evaluated
			}
			key := ks.AsString()
			if prev, dup := first[key]; dup {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Duplicate key",
					Detail:   fmt.Sprintf("The key %q is already set at %s; each key may be set only once in an object.", key, prev),
					Subject:  item.KeyExpr.Range().Ptr(),
					Context:  obj.SrcRange.Ptr(),
				})
				continue
			}
			first[key] = item.KeyExpr.Range()
		}
		return nil
	})
	return diags
}

func attrDiag(attr *hcl.Attribute, msg string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid value for argument",
		Detail:   fmt.Sprintf("Invalid value for %q: %s.", attr.Name, msg),
		Subject:  attr.Expr.Range().Ptr(),
		Context:  attr.Range.Ptr(),
	}
}

// AttrError points a Validate error at one attribute of the block.
type AttrError struct {
	Attr string
	Err  error
}

func (e *AttrError) Error() string { return fmt.Sprintf("%s: %v", e.Attr, e.Err) }
func (e *AttrError) Unwrap() error { return e.Err }

// ErrorAt wraps err so that its diagnostic points at the attribute attr.
func ErrorAt(attr string, err error) error {
	if err == nil {
		return nil
	}
	return &AttrError{Attr: attr, Err: err}
}

// BlockError points an error at a nested block: the index-th (from 0)
// block of type Block in the body. Err may itself point at an attribute
// of that block (ErrorAt) or at a block nested in it.
type BlockError struct {
	Block string
	Index int
	Err   error
}

func (e *BlockError) Error() string {
	return fmt.Sprintf("%s block %d: %v", e.Block, e.Index+1, e.Err)
}
func (e *BlockError) Unwrap() error { return e.Err }

// ErrorInBlock wraps err so that its diagnostic points into the index-th
// (from 0) nested block of type block: for errors that Validate or
// Provision of the whole Arguments find in one of its blocks (a rule whose
// regex does not compile is found when all rules are compiled together).
func ErrorInBlock(block string, index int, err error) error {
	if err == nil {
		return nil
	}
	return &BlockError{Block: block, Index: index, Err: err}
}

// validationDiags turns a Validate or Provision error (possibly
// errors.Join'ed) into one diagnostic per error, each at its attribute or
// nested block when known.
func validationDiags(err error, body hcl.Body, def hcl.Range) hcl.Diagnostics {
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var diags hcl.Diagnostics
	for _, e := range errs {
		if e == nil {
			continue
		}
		diags = append(diags, errorDiag(e, e, body, def))
	}
	return diags
}

// errorDiag places one error: it follows BlockErrors down to the nested
// block they name and points at an AttrError's attribute there. The detail
// is always the whole error's text (full).
func errorDiag(full, e error, body hcl.Body, def hcl.Range) *hcl.Diagnostic {
	be, isBlock := asFirst[*BlockError](e)
	ae, isAttr := asFirst[*AttrError](e)
	if isBlock && (!isAttr || blockOutside(e)) {
		if sb, ok := body.(*hclsyntax.Body); ok {
			i := 0
			for _, b := range sb.Blocks {
				if b.Type != be.Block {
					continue
				}
				if i == be.Index {
					return errorDiag(full, be.Err, b.Body, b.DefRange())
				}
				i++
			}
		}
	}
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid configuration", Detail: full.Error(), Subject: def.Ptr()}
	if isAttr {
		// JustAttributes complains about nested blocks but still returns
		// every attribute.
		attrs, _ := body.JustAttributes()
		if a, ok := attrs[ae.Attr]; ok {
			d.Subject = a.Expr.Range().Ptr()
			d.Context = a.Range.Ptr()
		}
	}
	return d
}

// asFirst is errors.As returning the value.
func asFirst[T error](err error) (T, bool) {
	var t T
	ok := errors.As(err, &t)
	return t, ok
}

// blockOutside reports whether the first BlockError in err's chain comes
// before (wraps) the first AttrError: the attribute is then inside the
// block.
func blockOutside(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch e.(type) {
		case *BlockError:
			return true
		case *AttrError:
			return false
		}
	}
	return false
}

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
	case t == gathererType:
		if val.Type() != ctyGatherer {
			return fmt.Errorf("a metrics reference (such as statsd_receiver.NAME.metrics) is required, got %s", val.Type().FriendlyName())
		}
		dst.Set(reflect.ValueOf(*(val.EncapsulatedValue().(*prometheus.Gatherer))))
		return nil
	case t == durationType:
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
