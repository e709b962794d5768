// Package labelset compares and de-duplicates the label sets of client_model
// metrics, for components that merge or rewrite metric families.
package labelset

import (
	"github.com/cespare/xxhash/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
)

var sep = []byte{model.SeparatorByte}

// Hash hashes a label set independently of the pairs' order. d is reused
// scratch space (one per goroutine).
func Hash(d *xxhash.Digest, pairs []*dto.LabelPair) uint64 {
	var sum uint64
	for _, lp := range pairs {
		d.Reset()
		_, _ = d.WriteString(lp.GetName())
		_, _ = d.Write(sep)
		_, _ = d.WriteString(lp.GetValue())
		sum += d.Sum64()
	}
	return sum
}

// Equal reports whether a and b hold the same pairs, in any order. Label
// names within one set are unique, as client_model guarantees.
func Equal(a, b []*dto.LabelPair) bool {
	if len(a) != len(b) {
		return false
	}
outer:
	for _, x := range a {
		for _, y := range b {
			if x.GetName() == y.GetName() {
				if x.GetValue() != y.GetValue() {
					return false
				}
				continue outer
			}
		}
		return false
	}
	return true
}

// Contains reports whether one of ms has the label set pairs.
func Contains(ms []*dto.Metric, pairs []*dto.LabelPair) bool {
	for _, m := range ms {
		if Equal(m.Label, pairs) {
			return true
		}
	}
	return false
}

// Dedupe keeps the first metric of each label set, filtering ms in place
// (the caller must own ms), and returns the kept metrics and how many it
// dropped.
func Dedupe(d *xxhash.Digest, ms []*dto.Metric) ([]*dto.Metric, int) {
	if len(ms) < 2 {
		return ms, 0
	}
	seen := make(map[uint64][]*dto.Metric, len(ms))
	out := ms[:0]
	for _, m := range ms {
		h := Hash(d, m.Label)
		dup := false
		for _, o := range seen[h] {
			if Equal(o.Label, m.Label) {
				dup = true
				break
			}
		}
		if !dup {
			seen[h] = append(seen[h], m)
			out = append(out, m)
		}
	}
	dropped := len(ms) - len(out)
	clear(ms[len(out):])
	return out, dropped
}
