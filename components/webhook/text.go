package webhook

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/encoded"
)

// The receiver hands metrics_sink its series already encoded
// (encoded.Gatherer): pushed series change one at a time and most of them
// rarely, so re-encoding every series at every scrape (about 3 µs each
// through the registry, dto values and the text encoder) was most of a
// scrape's cost. Each series keeps its lines (series.text) and each metric
// its page (famText.page); a change drops the text of the series it
// touched and its metric's page. A scrape then
//
//   - hands out the page of a metric that did not change, as it is;
//   - rebuilds the page of one that did by copying the lines of its
//     unchanged series and encoding only the changed ones, so a push to one
//     series of 100k costs the encoding of one series and a copy of the page.
//
// Encoding happens outside the store's lock (gatherText): a scrape holds
// it only to sweep expired series and to note what to encode, never while
// encoding, so pushes wait for a walk over pointers, not for the encoder.
// The bytes are expfmt's own (one series encoded at a time through the
// same prometheus.Metric the collector builds), so they are exactly those
// of Gather encoded (TestGatherTextEqualsGather).
//
// Memory: one page per metric, which the series' lines are slices of
// (after a rebuild every unchanged series points into the new page, so
// the old one is freed); between scrapes a changed series' old lines and
// a rebuild's new page are held too.

// famText is the text of one metric's series (see above). Guarded by the
// store's mutex.
type famText struct {
	gen     *uint64 // the store's change counter
	ver     uint64  // *gen at the metric's last change
	page    []byte  // the metric encoded; current while pageVer == ver
	pageVer uint64
	// header is the HELP and TYPE lines, for the help headerHelp (the
	// name and type of a metric never change).
	header     []byte
	headerHelp string
	// byName are the label indexes in the order of the label names: a
	// registry sorts a family's series by their label values in that order.
	byName []int
	// order are the series sorted as a registry sorts them, as of the
	// last scrape; gone series are skipped (and dropped at the next
	// sort). added are the series put since, unsorted. resort: both were
	// dropped (too many changes between scrapes), sort the map.
	order  []*series
	added  []*series
	resort bool
	// oldest is at most the oldest update (Unix ms) of a series that has
	// one: while it is within the ttl no series expired.
	oldest  int64
	escaped bool // a name is not a legacy Prometheus name (encoded.Family.Escaped)
}

func (t *famText) init(d *metricDef, gen *uint64) {
	// resort until the first scrape of the text sorts: a receiver never
	// scraped through a sink's text path keeps no order.
	t.gen, t.oldest, t.resort = gen, math.MaxInt64, true
	t.byName = make([]int, len(d.labels))
	for i := range t.byName {
		t.byName[i] = i
	}
	sort.SliceStable(t.byName, func(i, j int) bool { return d.labels[t.byName[i]] < d.labels[t.byName[j]] })
	t.escaped = !encoded.UnescapedMetricName(d.name)
	for _, l := range d.labels {
		t.escaped = t.escaped || !encoded.UnescapedLabelName(l)
	}
}

// changed notes a change to the metric: its page is out of date.
func (ms *metricState) changed() {
	*ms.text.gen++
	ms.text.ver = *ms.text.gen
}

// put makes sr the series at key (replacing any).
func (ms *metricState) put(key string, sr *series) {
	if old := ms.series[key]; old != nil {
		old.gone = true
	}
	ms.series[key] = sr
	t := &ms.text
	if !t.resort {
		t.added = append(t.added, sr)
		t.bound(len(ms.series))
	}
	if sr.updated != 0 {
		t.oldest = min(t.oldest, sr.updated)
	}
	ms.changed()
}

// remove removes the series at key.
func (ms *metricState) remove(key string) {
	sr := ms.series[key]
	if sr == nil {
		return
	}
	sr.gone = true
	delete(ms.series, key)
	ms.text.bound(len(ms.series))
	ms.changed()
}

// touch notes a change to sr's value or last update.
func (ms *metricState) touch(sr *series) {
	sr.ver++
	sr.text = nil
	if sr.updated != 0 {
		ms.text.oldest = min(ms.text.oldest, sr.updated)
	}
	ms.changed()
}

// resetAll removes every series.
func (ms *metricState) resetAll() {
	for _, sr := range ms.series {
		sr.gone = true
	}
	clear(ms.series)
	ms.text.order, ms.text.added, ms.text.resort = nil, nil, false
	ms.changed()
}

// bound keeps order and added (which hold removed series until the next
// scrape sorts) within twice the live series: without scrapes of the text,
// pushes that add and remove series would grow them forever.
func (t *famText) bound(live int) {
	if len(t.order)+len(t.added) > 2*live+64 {
		t.order, t.added, t.resort = nil, nil, true
	}
}

// compare orders two series of the metric as a registry does.
func (t *famText) compare(a, b *series) int {
	for _, i := range t.byName {
		if c := strings.Compare(a.values[i], b.values[i]); c != 0 {
			return c
		}
	}
	return 0
}

// sortOrder brings order up to date: the live series, sorted. A few
// series added to many cost sorting the few and one merge. Called with
// the store's lock held; a full sort (resort) is not done here but by
// build, outside the lock (see noteText).
func (ms *metricState) sortOrder() {
	t := &ms.text
	slices.SortFunc(t.added, t.compare)
	out := make([]*series, 0, len(ms.series))
	i, j := 0, 0
	for i < len(t.order) || j < len(t.added) {
		var next *series
		switch {
		case j == len(t.added) || (i < len(t.order) && t.compare(t.order[i], t.added[j]) <= 0):
			next = t.order[i]
			i++
		default:
			next = t.added[j]
			j++
		}
		if !next.gone {
			out = append(out, next)
		}
	}
	t.order, t.added = out, nil
}

// famJob is one metric of one gatherText: what it noted under the lock,
// and the page it built.
type famJob struct {
	ms      *metricState
	def     *metricDef
	text    *famText // for compare only (byName never changes)
	ver     uint64
	escaped bool
	page    []byte // current page, or the one built
	header  []byte // nil: to encode
	entries []textEntry
	// copies are the values of the series to encode (textEntry.copy).
	copies []series
	// sorted: entries are in the registry's order; otherwise build sorts
	// them and installText makes them the metric's order.
	sorted bool
	ends   []int // entries[i] is page[ends[i]:ends[i+1]] once built
}

// textEntry is one series of a page to build: its current lines, or the
// index of a copy of its values to encode (copy >= 0).
type textEntry struct {
	sr   *series
	text []byte
	ver  uint32
	copy int32
}

// gatherText returns the metrics' pages sorted by name, and the store's
// change counter they are current for (encoded.Versioned). Concurrent
// calls are serialized by textMu, so the second finds what the first
// encoded. expired counts the series it swept.
func (s *store) gatherText(now time.Time) (fams []encoded.Family, version uint64, expired int, err error) {
	s.textMu.Lock()
	defer s.textMu.Unlock()
	jobs, version, expired := s.noteText(now)
	for _, j := range jobs {
		if err = j.build(); err != nil {
			j.page = nil
			break
		}
	}
	s.installText(jobs)
	if err != nil {
		return nil, 0, expired, err
	}
	fams = make([]encoded.Family, 0, len(jobs))
	for _, j := range jobs {
		fams = append(fams, encoded.Family{Name: j.def.name, Text: j.page, Escaped: j.escaped})
	}
	return fams, version, expired, nil
}

// noteText sweeps expired series (as Collect leaves them out) and notes,
// for each metric with series, its page or what to build it from. It
// holds the store's lock for a walk over the changed metrics' series:
// a metric that needs a full sort (its first scrape, or after many
// changes) is noted unsorted and sorted by build.
func (s *store) noteText(now time.Time) ([]*famJob, uint64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.metrics))
	for name := range s.metrics {
		names = append(names, name)
	}
	sort.Strings(names)
	jobs := make([]*famJob, 0, len(names))
	expired := 0
	for _, name := range names {
		ms := s.metrics[name]
		expired += ms.expire(now)
		if len(ms.series) == 0 {
			continue // a registry leaves out a family without series
		}
		t := &ms.text
		j := &famJob{ms: ms, def: ms.def, text: t, ver: t.ver, escaped: t.escaped}
		jobs = append(jobs, j)
		if t.page != nil && t.pageVer == t.ver {
			j.page = t.page
			continue
		}
		if t.header != nil && t.headerHelp == ms.def.help {
			j.header = t.header
		}
		order := t.order
		if t.resort {
			// From now on puts are tracked in added; installText makes
			// the sorted series the order (unless too many changes
			// dropped it meanwhile).
			order = make([]*series, 0, len(ms.series))
			for _, sr := range ms.series {
				order = append(order, sr)
			}
			t.order, t.added, t.resort = nil, nil, false
		} else {
			ms.sortOrder()
			order = t.order
			j.sorted = true
		}
		j.entries = make([]textEntry, len(order))
		for i, sr := range order {
			e := textEntry{sr: sr, ver: sr.ver, text: sr.text, copy: -1}
			if e.text == nil {
				e.copy = int32(len(j.copies))
				j.copies = append(j.copies, series{values: sr.values, value: sr.value, counts: slices.Clone(sr.counts), sum: sr.sum, count: sr.count})
			}
			j.entries[i] = e
		}
	}
	return jobs, s.gen, expired
}

// build encodes what changed and copies the rest into a new page.
// Outside the lock: it reads only what noteText copied, the lines of
// pages (never modified), series' label values (never modified) and the
// metric's definition (immutable).
func (j *famJob) build() error {
	if j.entries == nil {
		return nil
	}
	if !j.sorted {
		slices.SortFunc(j.entries, func(a, b textEntry) int { return j.text.compare(a.sr, b.sr) })
	}
	var err error
	if j.header == nil {
		if j.header, err = j.def.textHeader(); err != nil {
			return err
		}
	}
	// The changed series are encoded into fresh, one after the other.
	var fresh bytes.Buffer
	freshEnds := make([]int, len(j.copies)+1)
	for k := range j.copies {
		if err := j.def.appendText(&fresh, &j.copies[k]); err != nil {
			return err
		}
		freshEnds[k+1] = fresh.Len()
	}
	size := len(j.header) + fresh.Len()
	for _, e := range j.entries {
		size += len(e.text)
	}
	page := make([]byte, 0, size)
	page = append(page, j.header...)
	j.ends = make([]int, len(j.entries)+1)
	j.ends[0] = len(page)
	for i, e := range j.entries {
		if e.copy >= 0 {
			page = append(page, fresh.Bytes()[freshEnds[e.copy]:freshEnds[e.copy+1]]...)
		} else {
			page = append(page, e.text...)
		}
		j.ends[i+1] = len(page)
	}
	j.page = page
	return nil
}

// installText keeps what gatherText built: the page of a metric that did
// not change meanwhile, the lines of each series that did not (its slice
// of the new page, so that the old page is freed), and the order build
// sorted.
func (s *store) installText(jobs []*famJob) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range jobs {
		if j.entries == nil {
			continue
		}
		t := &j.ms.text
		if j.page == nil {
			// Not built (an encoding error, or an earlier job's): an
			// order noteText dropped is rebuilt from the map next time.
			if !j.sorted && t.order == nil {
				t.order, t.added, t.resort = nil, nil, true
			}
			continue
		}
		if t.ver == j.ver {
			t.page, t.pageVer = j.page, j.ver
		}
		if j.ms.def.help == j.def.help {
			t.header, t.headerHelp = j.page[:j.ends[0]:j.ends[0]], j.def.help
		}
		if !j.sorted && !t.resort && t.order == nil {
			// Series put since noteText are in added; removed ones are
			// skipped at the next merge.
			t.order = make([]*series, len(j.entries))
			for i, e := range j.entries {
				t.order[i] = e.sr
			}
		}
		for i, e := range j.entries {
			if !e.sr.gone && e.sr.ver == e.ver {
				e.sr.text = j.page[j.ends[i]:j.ends[i+1]:j.ends[i+1]]
			}
		}
	}
}

// metric is sr as the collector exposes it.
func (d *metricDef) metric(sr *series) (prometheus.Metric, error) {
	switch d.typ {
	case "histogram":
		buckets := make(map[float64]uint64, len(d.buckets))
		var cum uint64
		for i, b := range d.buckets {
			cum += sr.counts[i]
			buckets[b] = cum
		}
		return prometheus.NewConstHistogram(d.desc, sr.count, sr.sum, buckets, sr.values...)
	case "counter":
		return prometheus.NewConstMetric(d.desc, prometheus.CounterValue, sr.value, sr.values...)
	default:
		return prometheus.NewConstMetric(d.desc, prometheus.GaugeValue, sr.value, sr.values...)
	}
}

func (d *metricDef) dtoType() dto.MetricType {
	switch d.typ {
	case "histogram":
		return dto.MetricType_HISTOGRAM
	case "counter":
		return dto.MetricType_COUNTER
	}
	return dto.MetricType_GAUGE
}

// appendText appends sr's lines, as expfmt writes them, to buf. A family
// without help is written with its TYPE line only, which is cut.
func (d *metricDef) appendText(buf *bytes.Buffer, sr *series) error {
	m, err := d.metric(sr)
	if err != nil {
		return fmt.Errorf("metric %s: %w", d.name, err)
	}
	var dm dto.Metric
	if err := m.Write(&dm); err != nil {
		return fmt.Errorf("metric %s: %w", d.name, err)
	}
	start := buf.Len()
	mf := &dto.MetricFamily{Name: proto.String(d.name), Type: d.dtoType().Enum(), Metric: []*dto.Metric{&dm}}
	if _, err := expfmt.MetricFamilyToText(buf, mf); err != nil {
		return fmt.Errorf("encoding metric %s: %w", d.name, err)
	}
	b := buf.Bytes()[start:]
	nl := bytes.IndexByte(b, '\n')
	n := copy(b, b[nl+1:])
	buf.Truncate(start + n)
	return nil
}

// textHeader is the metric's HELP and TYPE lines as expfmt writes them
// (help escaped, so they hold exactly two newlines): those of a family
// with one empty series, cut after them.
func (d *metricDef) textHeader() ([]byte, error) {
	m := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(0)}}
	switch d.typ {
	case "histogram":
		m = &dto.Metric{Histogram: &dto.Histogram{SampleCount: proto.Uint64(0), SampleSum: proto.Float64(0)}}
	case "counter":
		m = &dto.Metric{Counter: &dto.Counter{Value: proto.Float64(0)}}
	}
	var buf bytes.Buffer
	mf := &dto.MetricFamily{Name: proto.String(d.name), Help: proto.String(d.helpText()), Type: d.dtoType().Enum(), Metric: []*dto.Metric{m}}
	if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
		return nil, fmt.Errorf("encoding metric %s: %w", d.name, err)
	}
	b := buf.Bytes()
	first := bytes.IndexByte(b, '\n')
	second := first + 1 + bytes.IndexByte(b[first+1:], '\n')
	return bytes.Clone(b[:second+1]), nil
}
