// Package schema is what the component contract (package pipeline) and the
// runtime (package runtime) both need to know about the Go types of a
// component's Arguments and Exports: which struct fields carry `hcl` tags,
// which Go types an attribute or an export may have, and the cty capsule
// that carries a prometheus.Gatherer through expressions. pipeline.Register
// checks a registration with it; the runtime's decoder and evaluator walk
// the same fields. It lives apart so that the contract does not import the
// runtime, nor the runtime re-implement the rules.
//
// The tags and types themselves are documented in runtime/decode.go.
package schema

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Kind is what an `hcl` tag makes of a field.
type Kind int

// Field kinds.
const (
	KindAttr Kind = iota
	KindBlock
	KindLabel
)

// Field is one struct field with an `hcl` tag.
type Field struct {
	Name     string
	Kind     Kind
	Required bool
	Secret   bool // tagged `secret:"true"`
	Index    int  // in the struct
	Type     reflect.Type
}

// Go types with a meaning of their own in an Arguments or Exports struct.
var (
	DurationType = reflect.TypeFor[time.Duration]()
	ExprType     = reflect.TypeFor[hcl.Expression]()
	GathererType = reflect.TypeFor[prometheus.Gatherer]()
)

// ValidName reports whether s has the form of a component type's name and
// of an hcl field name: lower case letters, digits and underscores,
// starting with a letter. (A loop, not a regexp: every binary would
// compile one at init.)
func ValidName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// Fields returns the fields of struct type t that carry an `hcl` tag.
func Fields(t reflect.Type) ([]Field, error) {
	var out []Field
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
		fi := Field{Name: name, Index: i, Type: f.Type, Kind: KindAttr, Required: true, Secret: f.Tag.Get("secret") == "true"}
		switch opt {
		case "":
		case "optional":
			fi.Required = false
		case "block":
			fi.Kind = KindBlock
		case "label":
			fi.Kind = KindLabel
		default:
			return nil, fmt.Errorf("field %s: unknown hcl tag option %q", f.Name, opt)
		}
		if !ValidName(name) {
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

// CheckArguments verifies at registration time that a struct can be
// decoded.
func CheckArguments(t reflect.Type) error {
	fields, err := Fields(t)
	if err != nil {
		return err
	}
	for _, f := range fields {
		sf := t.Field(f.Index)
		switch f.Kind {
		case KindAttr:
			if f.Type == ExprType {
				continue // kept unevaluated
			}
			if err := CheckAttrType(f.Type); err != nil {
				return fmt.Errorf("field %s (attribute %q) of type %s cannot be decoded: %w", sf.Name, f.Name, f.Type, err)
			}
		case KindBlock:
			bt := BlockElem(f.Type)
			if bt == nil {
				return fmt.Errorf("field %s (block %q): type %s is not a struct, *struct or []struct", sf.Name, f.Name, f.Type)
			}
			if err := CheckArguments(bt); err != nil {
				return fmt.Errorf("field %s (block %q): %w", sf.Name, f.Name, err)
			}
		case KindLabel:
			if f.Type.Kind() != reflect.String {
				return fmt.Errorf("field %s (label %q) of type %s: a label must be a string", sf.Name, f.Name, f.Type)
			}
		}
	}
	return nil
}

// CheckExports verifies at registration time that every export field can
// be evaluated.
func CheckExports(t reflect.Type) error {
	fields, err := Fields(t)
	if err != nil {
		return err
	}
	for _, f := range fields {
		sf := t.Field(f.Index)
		if f.Kind != KindAttr {
			return fmt.Errorf("field %s (hcl %q): exports are values, not blocks or labels", sf.Name, f.Name)
		}
		if err := CheckAttrType(f.Type); err != nil {
			return fmt.Errorf("field %s (hcl %q) of type %s cannot be exported: %w", sf.Name, f.Name, f.Type, err)
		}
	}
	return nil
}

// CheckAttrType reports whether an attribute (or export) of type t can be
// decoded (or evaluated).
func CheckAttrType(t reflect.Type) error {
	switch {
	case t == DurationType, t == GathererType:
		return nil
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return nil
	case reflect.Slice, reflect.Pointer:
		return CheckAttrType(t.Elem())
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return fmt.Errorf("map keys must be strings")
		}
		return CheckAttrType(t.Elem())
	}
	return fmt.Errorf("unsupported type %s", t)
}

// BlockElem is the struct type of a nested block field (struct, *struct or
// []struct), or nil.
func BlockElem(t reflect.Type) reflect.Type {
	switch {
	case t.Kind() == reflect.Struct:
		return t
	case (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice) && t.Elem().Kind() == reflect.Struct:
		return t.Elem()
	}
	return nil
}
