package jsonlimit

import (
	"math/big"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Paths is the part of a document that expressions can see: the paths
// they traverse from one root variable. Decode builds only those; a
// document's other values are scanned (and checked) but never become cty
// values. The zero of a path set (nil) keeps nothing; All keeps everything.
//
// Keeping more than needed is always safe; keeping less would change what
// an expression sees. So whatever the analysis cannot follow (a computed
// index, the root passed whole to a function) keeps the whole value at the
// longest static prefix.
type Paths struct {
	whole bool
	keys  map[string]*Paths // an object's attribute, or an array's index as a decimal string
	each  *Paths            // every element of an array or object (a for expression's variable)
}

// All keeps the whole document.
func All() *Paths { return &Paths{whole: true} }

// PathsOf analyses the expressions for the traversals of the variable root.
// A for expression over a traversal of root (for x in root.items : x.a)
// keeps only what its body reads of each element.
func PathsOf(root string, exprs ...hcl.Expression) *Paths {
	p := &Paths{}
	for _, e := range exprs {
		if e != nil {
			addExpr(p, root, e)
		}
	}
	return p
}

func addExpr(p *Paths, root string, e hcl.Expression) {
	se, ok := e.(hclsyntax.Expression)
	if !ok {
		// Not native syntax (JSON config): only its variables are known.
		for _, t := range e.Variables() {
			if t.RootName() == root {
				p.add(staticSteps(t[1:]), true)
			}
		}
		return
	}
	// The for expressions whose collection is a plain traversal, by the
	// name of their value variable, and those collections (kept as a
	// structure whose elements are what the body reads).
	fors := map[string][]*hclsyntax.ForExpr{}
	colls := map[*hclsyntax.ScopeTraversalExpr]bool{}
	var travs []*hclsyntax.ScopeTraversalExpr
	_ = hclsyntax.VisitAll(se, func(n hclsyntax.Node) hcl.Diagnostics {
		switch n := n.(type) {
		case *hclsyntax.ForExpr:
			if st, ok := n.CollExpr.(*hclsyntax.ScopeTraversalExpr); ok {
				fors[n.ValVar] = append(fors[n.ValVar], n)
				colls[st] = true
			}
		case *hclsyntax.ScopeTraversalExpr:
			travs = append(travs, n)
		}
		return nil
	})
	for _, st := range travs {
		for _, steps := range resolve(st.Traversal, root, fors, 0) {
			p.add(steps, !colls[st])
		}
	}
}

// eachStep marks "every element" in a resolved path.
const eachStep = "\x00each"

// resolve turns a traversal into paths from root: directly when it starts
// at root, or through the collection of every for expression whose value
// variable it starts at. A name that is neither resolves to nothing (it is
// another variable). Several for expressions with the same variable name
// give several paths: a superset is safe.
func resolve(t hcl.Traversal, root string, fors map[string][]*hclsyntax.ForExpr, depth int) [][]string {
	name := t.RootName()
	rest := staticSteps(t[1:])
	if name == root {
		return [][]string{rest}
	}
	if depth > 8 {
		// For expressions nested this deep through one variable name
		// (shadowing): keep the whole document rather than guess.
		return [][]string{{""}}
	}
	var out [][]string
	for _, fe := range fors[name] {
		coll := fe.CollExpr.(*hclsyntax.ScopeTraversalExpr)
		for _, base := range resolve(coll.Traversal, root, fors, depth+1) {
			if len(base) > 0 && base[len(base)-1] == "" {
				// The collection's path already ends at a dynamic step:
				// kept whole.
				out = append(out, base)
				continue
			}
			path := append(append(append([]string{}, base...), eachStep), rest...)
			out = append(out, path)
		}
	}
	return out
}

// staticSteps is the attribute and constant-index steps of a traversal up
// to the first it cannot follow, which is marked by a final "".
func staticSteps(t hcl.Traversal) []string {
	var out []string
	for _, s := range t {
		switch s := s.(type) {
		case hcl.TraverseAttr:
			out = append(out, s.Name)
		case hcl.TraverseIndex:
			k, ok := indexKey(s.Key)
			if !ok {
				return append(out, "")
			}
			out = append(out, k)
		default:
			return append(out, "")
		}
	}
	return out
}

// indexKey is a constant index as the key Decode looks up: a string as
// is, a whole number in decimal (arrays are looked up by their index's
// decimal form; an object's attribute "0" is the same key, as in HCL).
func indexKey(k cty.Value) (string, bool) {
	if k.IsNull() || !k.IsKnown() {
		return "", false
	}
	switch k.Type() {
	case cty.String:
		return k.AsString(), true
	case cty.Number:
		bf := k.AsBigFloat()
		if !bf.IsInt() {
			return "", false
		}
		i, acc := bf.Int64()
		if acc != big.Exact {
			return "", false
		}
		return big.NewInt(i).String(), true
	}
	return "", false
}

// add keeps a path: whole at its end (a value read), or only as a
// structure (a for expression's collection, whose elements are kept by
// what reads them). A path ending in "" (a dynamic step) keeps the whole
// value before it.
func (p *Paths) add(steps []string, whole bool) {
	n := p
	for _, s := range steps {
		if n.whole {
			return
		}
		if s == "" {
			break
		}
		var next *Paths
		if s == eachStep {
			if n.each == nil {
				n.each = &Paths{}
			}
			next = n.each
		} else {
			if n.keys == nil {
				n.keys = map[string]*Paths{}
			}
			if next = n.keys[s]; next == nil {
				next = &Paths{}
				n.keys[s] = next
			}
		}
		n = next
	}
	if whole || (len(steps) > 0 && steps[len(steps)-1] == "") {
		n.whole = true
		n.keys, n.each = nil, nil
	}
}

// Whole reports whether p keeps the whole document.
func (p *Paths) Whole() bool { return p != nil && p.whole }

// child is what is kept of key k (an attribute name or an index): the
// path sets of the matching key and of every element.
func (p *Paths) child(k string, out []*Paths) []*Paths {
	if c := p.keys[k]; c != nil {
		out = append(out, c)
	}
	if p.each != nil {
		out = append(out, p.each)
	}
	return out
}
