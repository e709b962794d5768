package runtime

import (
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/schema"
)

// ArgDoc describes one argument or nested block of a component.
type ArgDoc struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`
	Required bool     `json:"required"`
	Default  string   `json:"default,omitempty"`
	Labels   []string `json:"labels,omitempty"`
	Args     []ArgDoc `json:"args,omitempty"` // a block's contents
}

// ComponentDoc describes a registered component.
type ComponentDoc struct {
	Name      string    `json:"name"`
	Stability Stability `json:"stability"`
	Summary   string    `json:"summary"`
	Package   string    `json:"package"`
	Module    string    `json:"module"`
	Version   string    `json:"version"`
	// Kind is "standard" for Sluice's own components, "plugin" otherwise.
	Kind    string   `json:"kind"`
	Args    []ArgDoc `json:"args"`
	Exports []ArgDoc `json:"exports"`
	Example string   `json:"example,omitempty"`
}

// standardPrefix holds the packages that ship as Sluice's own components.
const standardPrefix = "github.com/sluicehq/sluice/components/"

// Describe documents a registered component type from its Arguments and
// Exports types.
func Describe(r ComponentType) ComponentDoc {
	d := ComponentDoc{
		Name: r.Name, Stability: r.Stability, Summary: r.Summary, Package: r.PackagePath(),
		Kind: "plugin", Example: strings.TrimSpace(r.Example),
		Args: describeStruct(r.ArgsType()), Exports: describeStruct(r.ExportsType()),
	}
	if strings.HasPrefix(r.PackagePath(), standardPrefix) {
		d.Kind = "standard"
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		mods := append([]*debug.Module{&bi.Main}, bi.Deps...)
		for _, m := range mods {
			if m.Path != "" && (r.PackagePath() == m.Path || strings.HasPrefix(r.PackagePath(), m.Path+"/")) && len(m.Path) > len(d.Module) {
				d.Module, d.Version = m.Path, m.Version
				if m.Replace != nil {
					d.Version += " => " + m.Replace.Path
				}
			}
		}
	}
	return d
}

func describeStruct(t reflect.Type) []ArgDoc {
	def := reflect.New(t)
	if sd, ok := def.Interface().(SetDefaulter); ok {
		sd.SetDefaults()
	}
	fields, _ := schema.Fields(t)
	var out []ArgDoc
	for _, f := range fields {
		switch f.Kind {
		case schema.KindAttr:
			a := ArgDoc{Name: f.Name, Type: typeName(f.Type), Required: f.Required}
			if fv := def.Elem().Field(f.Index); !fv.IsZero() {
				a.Default = formatDefault(fv)
			}
			out = append(out, a)
		case schema.KindBlock:
			bt := schema.BlockElem(f.Type)
			_, labels := bodySchema(bt)
			kind := "block"
			switch f.Type.Kind() {
			case reflect.Slice:
				kind = "block (repeatable)"
			case reflect.Pointer:
				kind = "block (optional)"
			}
			out = append(out, ArgDoc{Name: f.Name, Type: kind, Required: f.Type.Kind() == reflect.Struct, Labels: labels, Args: describeStruct(bt)})
		}
	}
	return out
}

func typeName(t reflect.Type) string {
	switch {
	case t == schema.DurationType:
		return "duration"
	case t == schema.GathererType:
		return "metrics"
	case t == schema.ExprType:
		return "expression"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.Slice:
		return "list(" + typeName(t.Elem()) + ")"
	case reflect.Map:
		return "map(" + typeName(t.Elem()) + ")"
	}
	return "number"
}

func formatDefault(v reflect.Value) string {
	if v.Type() == schema.DurationType {
		return time.Duration(v.Int()).String()
	}
	if v.Kind() == reflect.String {
		return fmt.Sprintf("%q", v.String())
	}
	if v.Kind() == reflect.Pointer {
		return formatDefault(v.Elem())
	}
	return fmt.Sprint(v.Interface())
}
