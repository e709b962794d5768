package pipeline

import (
	"strings"

	"github.com/prometheus/common/model"
)

// Metric and label names that a config declares (a postgres_source
// metric, a webhook_receiver label, metrics_sink's const_labels, a statsd
// mapping's labels, remote_write's external_labels) are checked with these
// two functions, and only these, so that every component accepts the same
// names.
//
// Sluice follows Prometheus's legacy validation scheme
// (model.LegacyValidation), not UTF-8 names: a metric name is letters,
// digits, '_' and ':', not starting with a digit; a label name is letters,
// digits and '_', not starting with a digit. Every scraper and remote-write
// receiver Sluice feeds accepts those without escaping. On top of the
// scheme, label names starting with "__" are refused: Prometheus reserves
// them for itself (__name__, __address__...).
//
// Names that arrive with data rather than from the config (a scraped
// exposition, relabel rules' results) are Prometheus's to judge and are
// not checked with these.

// ValidMetricName reports whether name is a metric name Sluice accepts.
func ValidMetricName(name string) bool {
	return model.LegacyValidation.IsValidMetricName(name)
}

// ValidLabelName reports whether name is a label name Sluice accepts: valid
// and not reserved (starting with "__").
func ValidLabelName(name string) bool {
	return model.LegacyValidation.IsValidLabelName(name) && !strings.HasPrefix(name, "__")
}
