package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zclconf/go-cty/cty"

	"github.com/sluicehq/sluice/internal/schema"
)

// GathererVal wraps a gatherer for an EvalContext. Two values compare
// (RawEquals) equal only if they come from the same GathererVal call.
func GathererVal(g prometheus.Gatherer) cty.Value { return schema.GathererVal(g) }

// SourceID returns the ID of the component that exported g (for example
// "relabel.app", or "agent" for agent.metrics), or "" if g did not come
// from a reference.
func SourceID(g prometheus.Gatherer) string { return schema.SourceID(g) }

// UnwrapGatherer returns the gatherer a component exported, without the
// wrapper that tags it with the component's ID, so that a consumer can see
// which optional interfaces it implements (such as encoded.Gatherer).
func UnwrapGatherer(g prometheus.Gatherer) prometheus.Gatherer { return schema.Unwrap(g) }
