package statsd

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/statsd_exporter/pkg/mapper"
	"go.yaml.in/yaml/v2"

	"github.com/sluicehq/sluice/pipeline"
)

// Mapping is an inline mapping block: the fields of one entry of
// statsd_exporter's `mappings` list.
type Mapping struct {
	Match           string            `hcl:"match"`
	MatchType       string            `hcl:"match_type,optional"`
	Name            string            `hcl:"name,optional"`
	Labels          map[string]string `hcl:"labels,optional"`
	Action          string            `hcl:"action,optional"`
	ObserverType    string            `hcl:"observer_type,optional"`
	TTL             time.Duration     `hcl:"ttl,optional"`
	MatchMetricType string            `hcl:"match_metric_type,optional"`
	HonorLabels     bool              `hcl:"honor_labels,optional"`
	Help            string            `hcl:"help,optional"`
	Scale           *float64          `hcl:"scale,optional"`

	HistogramOptions *HistogramOptions `hcl:"histogram_options,block"`
	SummaryOptions   *SummaryOptions   `hcl:"summary_options,block"`
}

// MappingDefaults is the mapping_defaults block: statsd_exporter's
// `defaults`.
type MappingDefaults struct {
	ObserverType        string        `hcl:"observer_type,optional"`
	MatchType           string        `hcl:"match_type,optional"`
	GlobDisableOrdering bool          `hcl:"glob_disable_ordering,optional"`
	TTL                 time.Duration `hcl:"ttl,optional"`

	HistogramOptions *HistogramOptions `hcl:"histogram_options,block"`
	SummaryOptions   *SummaryOptions   `hcl:"summary_options,block"`
}

// HistogramOptions configure histograms (classic buckets and native
// histograms).
type HistogramOptions struct {
	Buckets                     []float64 `hcl:"buckets,optional"`
	NativeHistogramBucketFactor float64   `hcl:"native_histogram_bucket_factor,optional"`
	NativeHistogramMaxBuckets   uint32    `hcl:"native_histogram_max_buckets,optional"`
}

// SummaryOptions configure summaries. Quantiles are objects with
// `quantile` and `error`, as in the YAML.
type SummaryOptions struct {
	Quantiles  []map[string]float64 `hcl:"quantiles,optional"`
	MaxAge     time.Duration        `hcl:"max_age,optional"`
	AgeBuckets uint32               `hcl:"age_buckets,optional"`
	BufCap     uint32               `hcl:"buf_cap,optional"`
}

// Validate implements pipeline.Validator.
func (o *SummaryOptions) Validate() error {
	for i, q := range o.Quantiles {
		for k := range q {
			if k != "quantile" && k != "error" {
				return pipeline.ErrorAt("quantiles", fmt.Errorf("element %d: unknown key %q (use quantile and error)", i, k))
			}
		}
		if v, ok := q["quantile"]; !ok || v <= 0 || v >= 1 {
			return pipeline.ErrorAt("quantiles", fmt.Errorf("element %d: quantile must be set, between 0 and 1", i))
		}
		if v := q["error"]; v < 0 || v >= 1 {
			return pipeline.ErrorAt("quantiles", fmt.Errorf("element %d: error must be between 0 and 1", i))
		}
	}
	return nil
}

func oneOf(attr, v string, allowed ...string) error {
	if v == "" {
		return nil
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return pipeline.ErrorAt(attr, fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", ")))
}

// Validate implements pipeline.Validator for one mapping block: its enums,
// then the block alone through upstream's mapper, so every error upstream
// would report at start-up is a diagnostic here.
func (m *Mapping) Validate() error {
	errs := []error{
		oneOf("match_type", m.MatchType, "glob", "regex"),
		oneOf("action", m.Action, "map", "drop"),
		oneOf("observer_type", m.ObserverType, "histogram", "summary"),
		oneOf("match_metric_type", m.MatchMetricType, "counter", "gauge", "observer"),
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := m.checkLabels(); err != nil {
		return pipeline.ErrorAt("labels", err)
	}
	// The block compiles in Provision, with the others.
	return nil
}

// check compiles the block alone, to find which block (and attribute) a
// mapping that does not compile is wrong in.
func (m Mapping) check() error {
	err := compileYAML(yaml.MapSlice{{Key: "mappings", Value: []any{m.yaml()}}})
	if err == nil {
		return nil
	}
	attr := ""
	switch msg := err.Error(); {
	case strings.Contains(msg, "invalid match"), strings.Contains(msg, "invalid regex"):
		attr = "match"
	case strings.Contains(msg, "metric name"):
		attr = "name"
	case strings.Contains(msg, "label key"):
		attr = "labels"
	}
	if attr != "" {
		return pipeline.ErrorAt(attr, err)
	}
	return err
}

// checkLabels checks the block's label names against what its own
// observer_type reserves. With no observer_type the type comes from the
// defaults, which the receiver's Validate checks with the whole mapping
// (checkMappingLabels).
func (m *Mapping) checkLabels() error {
	if m.Action == "drop" {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
		if err := labelProblem(k, mapper.ObserverType(m.ObserverType), mapper.MetricType(m.MatchMetricType)); err != nil {
			return err
		}
	}
	return nil
}

// labelProblem says why a mapping label named k cannot be used on the
// series its mapping makes: a reserved name (`__` prefixed; le on
// histograms, quantile on summaries, which client_golang panics on) or an
// invalid one. observer is the mapping's effective observer type ("" when
// unknown: then only the type-independent checks run); a mapping that
// matches only counters or gauges makes no observers.
func labelProblem(k string, observer mapper.ObserverType, match mapper.MetricType) error {
	if strings.HasPrefix(k, "__") {
		return fmt.Errorf("label %q: names starting with __ are reserved", k)
	}
	if !pipeline.ValidLabelName(k) {
		return fmt.Errorf("label %q is not a valid Prometheus label name", k)
	}
	if match == mapper.MetricTypeCounter || match == mapper.MetricTypeGauge {
		return nil
	}
	switch {
	case k == "le" && observer == mapper.ObserverTypeHistogram:
		return errors.New(`label "le" is reserved for histogram buckets: rename it, or set match_metric_type to counter or gauge`)
	case k == "quantile" && observer == mapper.ObserverTypeSummary:
		return errors.New(`label "quantile" is reserved for summary quantiles: rename it, or set match_metric_type to counter or gauge`)
	}
	return nil
}

// checkMappingLabels checks every mapping of a compiled mapper (where each
// mapping's observer type is resolved against the defaults) with
// labelProblem.
func checkMappingLabels(m *mapper.MetricMapper) error {
	for i := range m.Mappings {
		mp := &m.Mappings[i]
		if mp.Action == mapper.ActionTypeDrop {
			continue
		}
		t := mp.ObserverType
		if t == mapper.ObserverTypeDefault {
			t = m.Defaults.ObserverType
		}
		if t == mapper.ObserverTypeDefault {
			t = mapper.ObserverTypeSummary // upstream's exporter's default
		}
		for _, k := range slices.Sorted(maps.Keys(mp.Labels)) {
			if err := labelProblem(k, t, mp.MatchMetricType); err != nil {
				return fmt.Errorf("mapping %d (match %q): %w", i+1, mp.Match, err)
			}
		}
	}
	return nil
}

// Validate implements pipeline.Validator.
func (d *MappingDefaults) Validate() error {
	errs := []error{
		oneOf("match_type", d.MatchType, "glob", "regex"),
		oneOf("observer_type", d.ObserverType, "histogram", "summary"),
	}
	// The block compiles in Provision, with the mappings.
	return errors.Join(errs...)
}

func (m Mapping) yaml() yaml.MapSlice {
	var s yaml.MapSlice
	add := func(k string, v any) { s = append(s, yaml.MapItem{Key: k, Value: v}) }
	add("match", m.Match)
	name := m.Name
	if name == "" && m.Action == "drop" {
		name = "dropped" // upstream insists on a name even for drops
	}
	add("name", name)
	if m.MatchType != "" {
		add("match_type", m.MatchType)
	}
	if len(m.Labels) > 0 {
		add("labels", m.Labels)
	}
	if m.Action != "" {
		add("action", m.Action)
	}
	if m.ObserverType != "" {
		add("observer_type", m.ObserverType)
	}
	if m.TTL != 0 {
		add("ttl", m.TTL.String())
	}
	if m.MatchMetricType != "" {
		add("match_metric_type", m.MatchMetricType)
	}
	if m.HonorLabels {
		add("honor_labels", true)
	}
	if m.Help != "" {
		add("help", m.Help)
	}
	if m.Scale != nil {
		add("scale", *m.Scale)
	}
	if m.HistogramOptions != nil {
		add("histogram_options", m.HistogramOptions.yaml())
	}
	if m.SummaryOptions != nil {
		add("summary_options", m.SummaryOptions.yaml())
	}
	return s
}

func (d MappingDefaults) yaml() yaml.MapSlice {
	var s yaml.MapSlice
	add := func(k string, v any) { s = append(s, yaml.MapItem{Key: k, Value: v}) }
	if d.ObserverType != "" {
		add("observer_type", d.ObserverType)
	}
	if d.MatchType != "" {
		add("match_type", d.MatchType)
	}
	if d.GlobDisableOrdering {
		add("glob_disable_ordering", true)
	}
	if d.TTL != 0 {
		add("ttl", d.TTL.String())
	}
	if d.HistogramOptions != nil {
		add("histogram_options", d.HistogramOptions.yaml())
	}
	if d.SummaryOptions != nil {
		add("summary_options", d.SummaryOptions.yaml())
	}
	return s
}

func (h HistogramOptions) yaml() yaml.MapSlice {
	var s yaml.MapSlice
	if len(h.Buckets) > 0 {
		s = append(s, yaml.MapItem{Key: "buckets", Value: h.Buckets})
	}
	if h.NativeHistogramBucketFactor != 0 {
		s = append(s, yaml.MapItem{Key: "native_histogram_bucket_factor", Value: h.NativeHistogramBucketFactor})
	}
	if h.NativeHistogramMaxBuckets != 0 {
		s = append(s, yaml.MapItem{Key: "native_histogram_max_buckets", Value: h.NativeHistogramMaxBuckets})
	}
	return s
}

func (o SummaryOptions) yaml() yaml.MapSlice {
	var s yaml.MapSlice
	if len(o.Quantiles) > 0 {
		qs := make([]any, 0, len(o.Quantiles))
		for _, q := range o.Quantiles {
			var item yaml.MapSlice
			for _, k := range []string{"quantile", "error"} {
				if v, ok := q[k]; ok {
					item = append(item, yaml.MapItem{Key: k, Value: v})
				}
			}
			for k, v := range q {
				if k != "quantile" && k != "error" {
					item = append(item, yaml.MapItem{Key: k, Value: v}) // rejected by the strict decoder
				}
			}
			qs = append(qs, item)
		}
		s = append(s, yaml.MapItem{Key: "quantiles", Value: qs})
	}
	if o.MaxAge != 0 {
		s = append(s, yaml.MapItem{Key: "max_age", Value: o.MaxAge.String()})
	}
	if o.AgeBuckets != 0 {
		s = append(s, yaml.MapItem{Key: "age_buckets", Value: o.AgeBuckets})
	}
	if o.BufCap != 0 {
		s = append(s, yaml.MapItem{Key: "buf_cap", Value: o.BufCap})
	}
	return s
}

// compiledMapping is a mapping as statsd_exporter's YAML and the mapper
// compiled from it.
type compiledMapping struct {
	yaml   string
	mapper *mapper.MetricMapper
}

// compileMapping reads the mapping file with readFile, assembles it with
// the blocks (mappingYAML) and compiles the result, once. Only when that
// fails does it compile parts alone, to point the error at the part that
// is wrong.
func compileMapping(a Arguments, readFile func(string) ([]byte, error), logger *slog.Logger) (*compiledMapping, error) {
	src, err := mappingYAML(a, readFile)
	if err != nil {
		return nil, err
	}
	m, err := newMapper(src, logger)
	if err == nil {
		err = checkMappingLabels(m)
	}
	if err == nil {
		logger.Debug("statsd mapping compiled", "mappings", len(m.Mappings))
		return &compiledMapping{yaml: src, mapper: m}, nil
	}
	// Report every part that is wrong on its own, each where it is.
	var errs []error
	if a.MappingFile != "" {
		if ferr := fileError(a.MappingFile, readFile); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	if d := a.MappingDefaults; d != nil {
		if derr := compileYAML(yaml.MapSlice{{Key: "defaults", Value: d.yaml()}}); derr != nil {
			errs = append(errs, pipeline.ErrorInBlock("mapping_defaults", 0, derr))
		}
	}
	for i, m := range a.Mappings {
		if merr := m.check(); merr != nil {
			errs = append(errs, pipeline.ErrorInBlock("mapping", i, merr))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return nil, fmt.Errorf("invalid mapping (mapping_file, mapping_defaults and mapping blocks together): %w", err)
}

// fileError compiles the mapping file alone and returns what is wrong with
// it, at mapping_file, or nil.
func fileError(path string, readFile func(string) ([]byte, error)) error {
	file, err := readFile(path)
	if err != nil {
		return pipeline.ErrorAt("mapping_file", fmt.Errorf("reading the mapping file: %w", err))
	}
	fm := new(mapper.MetricMapper)
	err = fm.InitFromYAMLString(string(file))
	if err != nil && isYAMLError(err) {
		// The file may be anything (mapping_file = "/etc/shadow"): its
		// YAML errors quote its content, so they are reduced to their
		// positions.
		err = redactYAMLError(err)
	}
	if err == nil {
		err = checkMappingLabels(fm)
	}
	if err != nil {
		return pipeline.ErrorAt("mapping_file", fmt.Errorf("invalid mapping file %s: %w", path, err))
	}
	return nil
}

// mappingYAML assembles the mapper configuration of a, in statsd_exporter's
// YAML: the file's document, the mapping_defaults block in place of its
// defaults, and the inline mappings after its mappings.
func mappingYAML(a Arguments, readFile func(string) ([]byte, error)) (string, error) {
	var doc yaml.MapSlice
	if a.MappingFile != "" {
		src, err := readFile(a.MappingFile)
		if err != nil {
			return "", pipeline.ErrorAt("mapping_file", fmt.Errorf("reading the mapping file: %w", err))
		}
		// The file may be anything (mapping_file = "/etc/shadow"): its
		// YAML errors quote its content, so they are reduced to their
		// positions.
		if err := yaml.Unmarshal(src, &doc); err != nil {
			return "", pipeline.ErrorAt("mapping_file", fmt.Errorf("invalid mapping file %s: %w", a.MappingFile, redactYAMLError(err)))
		}
	}
	var mappings []any
	var fileDefaults bool
	var rest yaml.MapSlice
	seen := map[string]bool{}
	for _, item := range doc {
		// Upstream's configuration has only string keys; a YAML complex
		// key (`? a: b`) is a map, which cannot be one (nor a map key).
		key, isString := item.Key.(string)
		if !isString {
			if err := fileError(a.MappingFile, readFile); err != nil {
				return "", err
			}
			return "", pipeline.ErrorAt("mapping_file", fmt.Errorf("invalid mapping file %s: a top-level key is not a string", a.MappingFile))
		}
		// Assembling would hide a key given twice, or mappings that are
		// not a list: upstream's strict parse of the file alone says what
		// is wrong and where (only on this error path).
		l, isList := item.Value.([]any)
		if seen[key] || (key == "mappings" && !isList && item.Value != nil) {
			if err := fileError(a.MappingFile, readFile); err != nil {
				return "", err
			}
			return "", pipeline.ErrorAt("mapping_file", fmt.Errorf("invalid mapping file %s: a top-level key is given twice, or mappings is not a list", a.MappingFile))
		}
		seen[key] = true
		switch key {
		case "mappings":
			mappings = l
		case "defaults":
			fileDefaults = true
			if a.MappingDefaults == nil {
				rest = append(rest, item)
			}
		default:
			rest = append(rest, item)
		}
	}
	if a.MappingDefaults != nil {
		if fileDefaults {
			return "", pipeline.ErrorAt("mapping_file", errors.New("the mapping file has `defaults` and the block has a mapping_defaults block: set the defaults in one place"))
		}
		rest = append(rest, yaml.MapItem{Key: "defaults", Value: a.MappingDefaults.yaml()})
	}
	for _, m := range a.Mappings {
		mappings = append(mappings, m.yaml())
	}
	if len(mappings) > 0 {
		rest = append(rest, yaml.MapItem{Key: "mappings", Value: mappings})
	}
	out, err := yaml.Marshal(rest)
	if err != nil {
		return "", fmt.Errorf("assembling the mapping: %w", err)
	}
	return string(out), nil
}

// yamlLineRE finds the positions in a YAML error message.
// Compiled on first use (a mapping error), not at every binary's start.
var yamlLineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`line (\d+)`) })

// isYAMLError tells YAML decoding errors (which quote the document) from
// the mapper's own checks (which quote a mapping's match or name).
func isYAMLError(err error) bool {
	var te *yaml.TypeError
	return errors.As(err, &te) || strings.HasPrefix(err.Error(), "yaml:")
}

// redactYAMLError reduces a YAML error to what kind of error it is and
// where: the YAML library quotes the offending content ("cannot unmarshal
// !!str `root:$6$...`", "field API_KEY not found", "key ... already
// defined"), and a mapping file that is not a mapping file may hold
// secrets.
func redactYAMLError(err error) error {
	msg := err.Error()
	kind := "not valid YAML"
	switch {
	case strings.Contains(msg, "cannot unmarshal"):
		kind = "a value of the wrong type"
	case strings.Contains(msg, "not found in type"):
		kind = "an unknown field"
	case strings.Contains(msg, "already defined"), strings.Contains(msg, "already set"):
		kind = "a duplicate key"
	}
	var lines []string
	for _, m := range yamlLineRE().FindAllStringSubmatch(msg, -1) {
		if !slices.Contains(lines, m[1]) {
			lines = append(lines, m[1])
		}
	}
	if len(lines) == 0 {
		return fmt.Errorf("%s (content not shown)", kind)
	}
	return fmt.Errorf("%s at line %s (content not shown)", kind, strings.Join(lines, ", "))
}

func compileYAML(doc yaml.MapSlice) error {
	out, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	return new(mapper.MetricMapper).InitFromYAMLString(string(out))
}

// newMapper compiles a mapping into a fresh upstream mapper. A mapper is
// never re-initialised in place: the shards read its defaults without a
// lock, so a reload builds a new one and swaps the pointer.
func newMapper(src string, logger *slog.Logger) (*mapper.MetricMapper, error) {
	m := &mapper.MetricMapper{Logger: mapperLogger(logger)}
	if err := m.InitFromYAMLString(src); err != nil {
		return nil, err
	}
	return m, nil
}
