package runtime

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
	"reflect"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/sluicehq/sluice/internal/schema"
)

// bodySchema returns the HCL schema of a struct and the names of its labels.
func bodySchema(t reflect.Type) (*hcl.BodySchema, []string) {
	fields, _ := schema.Fields(t) // checked at registration
	s := &hcl.BodySchema{}
	var labels []string
	for _, f := range fields {
		switch f.Kind {
		case schema.KindAttr:
			s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: f.Name, Required: f.Required})
		case schema.KindBlock:
			_, bl := bodySchema(schema.BlockElem(f.Type))
			s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: f.Name, LabelNames: bl})
		case schema.KindLabel:
			labels = append(labels, f.Name)
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
	fields, _ := schema.Fields(t)
	var out []hcl.Range
	for _, f := range fields {
		switch {
		case f.Kind == schema.KindAttr && f.Secret:
			if a, ok := sb.Attributes[f.Name]; ok {
				out = append(out, a.Range())
			}
		case f.Kind == schema.KindBlock:
			for _, b := range sb.Blocks {
				if b.Type == f.Name {
					out = append(out, secretRanges(b.Body, schema.BlockElem(f.Type))...)
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
	bs, _ := bodySchema(target.Type())
	content, diags := body.Content(bs)
	fields, _ := schema.Fields(target.Type())
	evaluated := map[string]cty.Value{}
	for _, f := range fields {
		dst := target.Field(f.Index)
		switch f.Kind {
		case schema.KindAttr:
			attr, ok := content.Attributes[f.Name]
			if !ok {
				continue
			}
			if d := duplicateKeys(attr.Expr, ctx); d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			if f.Type == schema.ExprType {
				dst.Set(reflect.ValueOf(&attr.Expr).Elem())
				evaluated[f.Name] = cty.StringVal(exprKey(attr.Expr))
				continue
			}
			val, d := attr.Expr.Value(ctx)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			if val.IsNull() {
				if f.Required {
					diags = append(diags, attrDiag(attr, "must not be null"))
				}
				continue
			}
			if err := assign(val, dst); err != nil {
				diags = append(diags, attrDiag(attr, err.Error()))
				continue
			}
			evaluated[f.Name] = val
		case schema.KindBlock:
			var blocks hcl.Blocks
			for _, b := range content.Blocks {
				if b.Type == f.Name {
					blocks = append(blocks, b)
				}
			}
			v, d := decodeBlocks(f, blocks, body, ctx, dst)
			diags = append(diags, d...)
			evaluated[f.Name] = v
		}
	}
	return cty.ObjectVal(evaluated), diags
}

func decodeBlocks(f schema.Field, blocks hcl.Blocks, parent hcl.Body, ctx *hcl.EvalContext, dst reflect.Value) (cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	elemT := schema.BlockElem(f.Type)
	switch f.Type.Kind() {
	case reflect.Struct, reflect.Pointer:
		if len(blocks) > 1 {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Duplicate %s block", f.Name),
				Detail:   fmt.Sprintf("Only one %s block is allowed here; another was defined at %s.", f.Name, blocks[0].DefRange),
				Subject:  blocks[1].DefRange.Ptr(),
			})
			return cty.NilVal, diags
		}
		if len(blocks) == 0 {
			if f.Type.Kind() == reflect.Struct {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  fmt.Sprintf("Missing %s block", f.Name),
					Detail:   fmt.Sprintf("A %s block is required here.", f.Name),
					Subject:  parent.MissingItemRange().Ptr(),
				})
			}
			return cty.EmptyTupleVal, diags
		}
		elem := reflect.New(elemT).Elem()
		v, d := decodeBlock(blocks[0], ctx, elem)
		diags = append(diags, d...)
		if f.Type.Kind() == reflect.Struct {
			dst.Set(elem)
		} else {
			dst.Set(elem.Addr())
		}
		return cty.TupleVal([]cty.Value{v}), diags
	default: // slice
		slice := reflect.MakeSlice(f.Type, 0, len(blocks))
		vals := make([]cty.Value, 0, len(blocks))
		firstByLabels := map[string]*hcl.Block{}
		for _, b := range blocks {
			if len(b.Labels) > 0 {
				key := strings.Join(b.Labels, "\x00")
				if first, dup := firstByLabels[key]; dup {
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  fmt.Sprintf("Duplicate %s %q block", f.Name, strings.Join(b.Labels, `" "`)),
						Detail:   fmt.Sprintf("Each %s block needs a unique name; this one is already defined at %s.", f.Name, first.DefRange),
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
	fields, _ := schema.Fields(elem.Type())
	li := 0
	labels := map[string]cty.Value{}
	for _, f := range fields {
		if f.Kind == schema.KindLabel && li < len(b.Labels) {
			elem.Field(f.Index).SetString(b.Labels[li])
			labels[f.Name] = cty.StringVal(b.Labels[li])
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
