// Package gathermerge merges the metric families of several gatherers by
// family name, as metrics_sink serves them and remote_write samples them.
package gathermerge

import (
	"errors"
	"fmt"
	"sort"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/labelset"
)

// Reasons passed to the error callback of Merge.
const (
	ReasonGather       = "gather"       // the input's Gather returned an error and no family
	ReasonPartial      = "partial"      // it returned families and errors: one call per error (a family or metric it dropped)
	ReasonInconsistent = "inconsistent" // a family or series was skipped
)

// SplitErrors lists the errors a Gather returned together: a
// prometheus.MultiError or an errors.Join holds one per family or metric
// that failed (a registry drops those and returns the rest).
func SplitErrors(err error) []error {
	if err == nil {
		return nil
	}
	var me prometheus.MultiError
	if errors.As(err, &me) && len(me) > 0 {
		return me
	}
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := u.Unwrap(); len(errs) > 0 {
			return errs
		}
	}
	return []error{err}
}

// Merge gathers every input and merges their families by name. Gathers
// are partial: the families an input returns together with an error are
// used, and each of its errors is reported (ReasonPartial), so one bad
// family never holds back the rest. Input
// families are never modified: a family that needs a merge is copied. A
// family of another type than an earlier input's, and a series that
// duplicates an earlier input's, are skipped and reported. onError (may be
// nil) is called for every problem with the input's index; the errors that
// made a whole input or family unusable are returned too. With several
// inputs, the result is sorted by family name.
func Merge(inputs []prometheus.Gatherer, onError func(input int, reason string, err error)) ([]*dto.MetricFamily, []error) {
	report := func(i int, reason string, err error) {
		if onError != nil {
			onError(i, reason, err)
		}
	}
	var (
		errs    []error
		out     []*dto.MetricFamily
		index   map[string]int                   // family name -> position in out
		owned   map[int]map[uint64][]*dto.Metric // merged families: metrics by label set hash, for duplicate checks
		d       = xxhash.New()
		several = len(inputs) > 1
	)
	for i, in := range inputs {
		fams, err := in.Gather()
		switch {
		case err != nil && len(fams) == 0:
			report(i, ReasonGather, err)
			errs = append(errs, err)
		case err != nil:
			for _, e := range SplitErrors(err) {
				report(i, ReasonPartial, e)
			}
			errs = append(errs, err)
		}
		if out == nil {
			out = make([]*dto.MetricFamily, 0, len(fams))
		}
		for _, mf := range fams {
			if mf == nil || len(mf.Metric) == 0 {
				continue
			}
			if err := CheckFamily(mf); err != nil {
				report(i, ReasonInconsistent, err)
				errs = append(errs, err)
				continue
			}
			if !several {
				out = append(out, mf)
				continue
			}
			if index == nil {
				index = map[string]int{}
				owned = map[int]map[uint64][]*dto.Metric{}
			}
			j, seen := index[mf.GetName()]
			if !seen {
				index[mf.GetName()] = len(out)
				out = append(out, mf)
				continue
			}
			have := out[j]
			if have.GetType() != mf.GetType() {
				err := fmt.Errorf("family %q is a %s in input %d but a %s in an earlier input: skipped from input %d",
					mf.GetName(), mf.GetType(), i, have.GetType(), i)
				report(i, ReasonInconsistent, err)
				errs = append(errs, err)
				continue
			}
			hashes := owned[j]
			if hashes == nil {
				// First merge into this family: copy it, so the input's
				// family stays untouched.
				hashes = make(map[uint64][]*dto.Metric, len(have.Metric)+len(mf.Metric))
				for _, m := range have.Metric {
					h := labelset.Hash(d, m.Label)
					hashes[h] = append(hashes[h], m)
				}
				have = &dto.MetricFamily{Name: have.Name, Help: have.Help, Type: have.Type, Unit: have.Unit,
					Metric: append(make([]*dto.Metric, 0, len(have.Metric)+len(mf.Metric)), have.Metric...)}
				out[j], owned[j] = have, hashes
			}
			dups := 0
			for _, m := range mf.Metric {
				h := labelset.Hash(d, m.Label)
				if labelset.Contains(hashes[h], m.Label) {
					dups++
					continue
				}
				hashes[h] = append(hashes[h], m)
				have.Metric = append(have.Metric, m)
			}
			if dups > 0 {
				err := fmt.Errorf("family %q: %d series of input %d duplicate series of an earlier input: skipped", mf.GetName(), dups, i)
				report(i, ReasonInconsistent, err)
			}
		}
	}
	if several {
		sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	}
	return out, errs
}

// CheckFamily reports a family an encoder could not write: one without a
// name, or with a metric that lacks the value its type calls for.
func CheckFamily(mf *dto.MetricFamily) error {
	if mf.GetName() == "" {
		return errors.New("metric family without a name: skipped")
	}
	t := mf.GetType()
	for _, m := range mf.Metric {
		if !HasValue(t, m) {
			return fmt.Errorf("family %q of type %s has a metric without a %s value: skipped", mf.GetName(), t, t)
		}
	}
	return nil
}

// HasValue reports whether m (which may be nil) carries the value a
// family of type t calls for: what an encoder needs to write it.
func HasValue(t dto.MetricType, m *dto.Metric) bool {
	if m == nil {
		return false
	}
	switch t {
	case dto.MetricType_COUNTER:
		return m.Counter != nil
	case dto.MetricType_GAUGE:
		return m.Gauge != nil
	case dto.MetricType_SUMMARY:
		return m.Summary != nil
	case dto.MetricType_UNTYPED:
		return m.Untyped != nil
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return m.Histogram != nil
	}
	return false
}
