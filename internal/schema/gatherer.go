package schema

import (
	"reflect"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zclconf/go-cty/cty"
)

// CtyGatherer carries a prometheus.Gatherer through HCL expressions.
var CtyGatherer = cty.CapsuleWithOps("metrics", GathererType, &cty.CapsuleOps{
	TypeGoString: func(reflect.Type) string { return "pipeline.Gatherer" },
})

// GathererVal wraps a gatherer for an EvalContext. Two values compare
// (RawEquals) equal only if they come from the same GathererVal call.
func GathererVal(g prometheus.Gatherer) cty.Value {
	return cty.CapsuleVal(CtyGatherer, &g)
}

// componentGatherer is a gatherer exported by a component, tagged with the
// component's ID so that consumers can name their inputs.
type componentGatherer struct {
	prometheus.Gatherer
	id string
}

// Exported tags g as exported by the component id (see SourceID).
func Exported(g prometheus.Gatherer, id string) prometheus.Gatherer {
	return &componentGatherer{Gatherer: g, id: id}
}

// Unwrap returns the gatherer Exported tagged, or g if it was not tagged.
func Unwrap(g prometheus.Gatherer) prometheus.Gatherer {
	if cg, ok := g.(*componentGatherer); ok {
		return cg.Gatherer
	}
	return g
}

// SourceID returns the ID g was tagged with by Exported, or "".
func SourceID(g prometheus.Gatherer) string {
	if cg, ok := g.(*componentGatherer); ok {
		return cg.id
	}
	return ""
}
