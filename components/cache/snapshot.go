package cache

import (
	"sort"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/encoded"
	"github.com/sluicehq/sluice/labelset"
)

// snapshot is what scrapes serve. Once stored in Component.snap nothing in
// it changes, neither the slices nor the families and metrics they point
// to (which are the input's own, shared): a refresh builds a new snapshot.
type snapshot struct {
	fams []*dto.MetricFamily
	meta []famMeta // parallel to fams
	// refreshedAt is the time of the last successful refresh (restored:
	// that of the refresh that was persisted); zero for none.
	refreshedAt time.Time

	series, stale, restored int

	// version is set when the snapshot is stored (Component.storeSnapshot):
	// GatherTextVersion's version.
	version uint64

	// text is fams encoded, made by the first encoded call (the snapshot
	// is otherwise immutable; the encoding is derived from it).
	text lazyText
}

type lazyText struct {
	once sync.Once
	fams []encoded.Family
	err  error
}

// encoded returns the snapshot's families in the text format, encoding
// them on the first call.
func (s *snapshot) encoded() ([]encoded.Family, error) {
	s.text.once.Do(func() { s.text.fams, s.text.err = encoded.Encode(s.fams) })
	return s.text.fams, s.text.err
}

// famMeta is what the cache knows about the series of one family, in the
// order of the family's metrics.
type famMeta struct {
	seen     []int64 // last seen in a successful refresh, Unix nanoseconds
	restored []bool  // read back from disk and not seen since; nil for none
}

// mergeStats counts what a merge kept and dropped.
type mergeStats struct{ expired int }

// merge builds the snapshot that follows a successful refresh at now which
// returned in. Every series of in is fresh. A series of old that in lacks
// is kept, with its last value and position, while it was seen within
// maxStaleness; one whose family changed type is dropped. Families and
// their metadata come from in; a family only old has keeps old's.
//
// Families of in that need nothing added are used as they are, without a
// copy; a family that gains kept series is a new family (the input's is
// never modified) whose metrics are sorted as a registry sorts them, so
// that a series keeps its place whether it is fresh or kept.
func merge(old *snapshot, in []*dto.MetricFamily, now time.Time, maxStaleness time.Duration) (*snapshot, mergeStats) {
	var st mergeStats
	cutoff := now.Add(-maxStaleness).UnixNano()
	nowN := now.UnixNano()
	oldByName := make(map[string]int, len(old.fams))
	for i, mf := range old.fams {
		oldByName[mf.GetName()] = i
	}
	out := &snapshot{fams: make([]*dto.MetricFamily, 0, len(in)), meta: make([]famMeta, 0, len(in)), refreshedAt: now}
	d := xxhash.New()
	inNames := make(map[string]bool, len(in))
	sorted := true
	for _, mf := range in {
		if mf == nil {
			continue
		}
		name := mf.GetName()
		if n := len(out.fams); n > 0 && out.fams[n-1].GetName() > name {
			sorted = false
		}
		if inNames[name] {
			// The same family twice in one gather: serve it as the input
			// did; kept series are merged into the first only.
			out.fams = append(out.fams, mf)
			out.meta = append(out.meta, famMeta{seen: filled(len(mf.Metric), nowN)})
			continue
		}
		inNames[name] = true
		oi, had := oldByName[name]
		if !had || old.fams[oi].GetType() != mf.GetType() {
			if had {
				st.expired += len(old.fams[oi].Metric)
			}
			out.fams = append(out.fams, mf)
			out.meta = append(out.meta, famMeta{seen: filled(len(mf.Metric), nowN)})
			continue
		}
		fam, meta, expired := mergeFamily(d, old.fams[oi], old.meta[oi], mf, nowN, cutoff)
		st.expired += expired
		out.fams = append(out.fams, fam)
		out.meta = append(out.meta, meta)
	}
	added := false
	for i, mf := range old.fams {
		if inNames[mf.GetName()] {
			continue
		}
		fam, meta, expired := keepLive(mf, old.meta[i], cutoff)
		st.expired += expired
		if fam != nil {
			out.fams = append(out.fams, fam)
			out.meta = append(out.meta, meta)
			added = true
		}
	}
	if added && sorted {
		// The input sorts its families by name (a registry does): keep
		// the families only the old snapshot had in their place.
		sortFamilies(out)
	}
	out.count()
	return out, st
}

// mergeFamily merges the series of cur with those of prev that cur lacks
// and that are still live.
func mergeFamily(d *xxhash.Digest, prev *dto.MetricFamily, pm famMeta, cur *dto.MetricFamily, nowN, cutoff int64) (*dto.MetricFamily, famMeta, int) {
	// The series of cur by label set hash: the first one of each hash in
	// present (index+1), any other one with the same hash in collisions.
	present := make(map[uint64]int32, len(cur.Metric))
	var collisions map[uint64][]*dto.Metric
	for i, m := range cur.Metric {
		if m == nil {
			continue
		}
		h := labelset.Hash(d, m.Label)
		if present[h] == 0 {
			present[h] = int32(i + 1)
			continue
		}
		if collisions == nil {
			collisions = map[uint64][]*dto.Metric{}
		}
		collisions[h] = append(collisions[h], m)
	}
	has := func(m *dto.Metric) bool {
		h := labelset.Hash(d, m.Label)
		i := present[h]
		if i == 0 {
			return false
		}
		return labelset.Equal(cur.Metric[i-1].Label, m.Label) || labelset.Contains(collisions[h], m.Label)
	}
	var (
		kept     []*dto.Metric
		keptMeta famMeta
		expired  int
	)
	for j, m := range prev.Metric {
		if m == nil || has(m) {
			continue
		}
		if pm.seen[j] < cutoff {
			expired++
			continue
		}
		kept = append(kept, m)
		keptMeta.seen = append(keptMeta.seen, pm.seen[j])
		keptMeta.restored = append(keptMeta.restored, pm.restored != nil && pm.restored[j])
	}
	if len(kept) == 0 {
		return cur, famMeta{seen: filled(len(cur.Metric), nowN)}, expired
	}
	n := len(cur.Metric) + len(kept)
	fam := &dto.MetricFamily{Name: cur.Name, Help: cur.Help, Type: cur.Type, Unit: cur.Unit,
		Metric: append(append(make([]*dto.Metric, 0, n), cur.Metric...), kept...)}
	meta := famMeta{seen: append(filled(len(cur.Metric), nowN), keptMeta.seen...)}
	if anyTrue(keptMeta.restored) {
		meta.restored = append(make([]bool, len(cur.Metric), n), keptMeta.restored...)
	}
	sortMetrics(fam.Metric, meta)
	return fam, meta, expired
}

// keepLive returns fam without its series last seen before cutoff (nil if
// none is left), fam itself if all are live.
func keepLive(fam *dto.MetricFamily, m famMeta, cutoff int64) (*dto.MetricFamily, famMeta, int) {
	live := 0
	for _, s := range m.seen {
		if s >= cutoff {
			live++
		}
	}
	switch live {
	case len(m.seen):
		return fam, m, 0
	case 0:
		return nil, famMeta{}, len(m.seen)
	}
	out := &dto.MetricFamily{Name: fam.Name, Help: fam.Help, Type: fam.Type, Unit: fam.Unit, Metric: make([]*dto.Metric, 0, live)}
	meta := famMeta{seen: make([]int64, 0, live)}
	if m.restored != nil {
		meta.restored = make([]bool, 0, live)
	}
	for j, s := range m.seen {
		if s < cutoff {
			continue
		}
		out.Metric = append(out.Metric, fam.Metric[j])
		meta.seen = append(meta.seen, s)
		if m.restored != nil {
			meta.restored = append(meta.restored, m.restored[j])
		}
	}
	return out, meta, len(m.seen) - live
}

// expire returns s without the series last seen before now-maxStaleness,
// or s itself when none is that old. It is what a failed refresh does.
func expire(s *snapshot, now time.Time, maxStaleness time.Duration) (*snapshot, int) {
	cutoff := now.Add(-maxStaleness).UnixNano()
	any := false
	for _, m := range s.meta {
		for _, seen := range m.seen {
			if seen < cutoff {
				any = true
				break
			}
		}
	}
	if !any {
		return s, 0
	}
	out := &snapshot{refreshedAt: s.refreshedAt}
	expired := 0
	for i, fam := range s.fams {
		f, m, n := keepLive(fam, s.meta[i], cutoff)
		expired += n
		if f != nil {
			out.fams = append(out.fams, f)
			out.meta = append(out.meta, m)
		}
	}
	out.count()
	return out, expired
}

// count sets the series counters.
func (s *snapshot) count() {
	s.series, s.stale, s.restored = 0, 0, 0
	last := s.refreshedAt.UnixNano()
	for _, m := range s.meta {
		s.series += len(m.seen)
		for j, seen := range m.seen {
			if seen != last {
				s.stale++
			}
			if m.restored != nil && m.restored[j] {
				s.restored++
			}
		}
	}
}

func filled(n int, v int64) []int64 {
	s := make([]int64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func anyTrue(bs []bool) bool {
	for _, b := range bs {
		if b {
			return true
		}
	}
	return false
}

// sortMetrics sorts ms, and meta with them, by label set: pair by pair,
// by name then value (as a registry orders the series of a family), then
// by timestamp.
func sortMetrics(ms []*dto.Metric, meta famMeta) {
	sort.Stable(metricSorter{ms, meta})
}

type metricSorter struct {
	ms   []*dto.Metric
	meta famMeta
}

func (s metricSorter) Len() int { return len(s.ms) }
func (s metricSorter) Swap(i, j int) {
	s.ms[i], s.ms[j] = s.ms[j], s.ms[i]
	s.meta.seen[i], s.meta.seen[j] = s.meta.seen[j], s.meta.seen[i]
	if s.meta.restored != nil {
		s.meta.restored[i], s.meta.restored[j] = s.meta.restored[j], s.meta.restored[i]
	}
}
func (s metricSorter) Less(i, j int) bool {
	a, b := s.ms[i], s.ms[j]
	al, bl := a.GetLabel(), b.GetLabel() // nil-safe
	for k := 0; k < len(al) && k < len(bl); k++ {
		if an, bn := al[k].GetName(), bl[k].GetName(); an != bn {
			return an < bn
		}
		if av, bv := al[k].GetValue(), bl[k].GetValue(); av != bv {
			return av < bv
		}
	}
	if len(al) != len(bl) {
		return len(al) < len(bl)
	}
	return a.GetTimestampMs() < b.GetTimestampMs()
}

type famSorter struct{ s *snapshot }

func (f famSorter) Len() int { return len(f.s.fams) }
func (f famSorter) Swap(i, j int) {
	f.s.fams[i], f.s.fams[j] = f.s.fams[j], f.s.fams[i]
	f.s.meta[i], f.s.meta[j] = f.s.meta[j], f.s.meta[i]
}
func (f famSorter) Less(i, j int) bool { return f.s.fams[i].GetName() < f.s.fams[j].GetName() }

func sortFamilies(s *snapshot) { sort.Stable(famSorter{s}) }
