package statsd

import (
	"bytes"
	"hash/maphash"
	"math"
	"strconv"
)

// The fast path: most statsd traffic repeats a few thousand series, and
// everything that decides where a line goes (its name, type and DogStatsD
// tags) repeats with it; only the value and the sample rate change. For a
// line of one sample in the common form
//
//	name:value|type[|@rate][|#tags]
//
// a reader keeps what the full path (upstream's parser, the mapper, the
// label checks) made of the line's signature, and applies later lines with
// the same signature from that: no parsing of tags, no mapping, no copy of
// the line, no allocation. The full path stays the authority: a signature
// is only remembered from what the full path did with a line (see
// capture), and every line the fast path is not sure about (other forms,
// several samples, a value or rate it would refuse, a value that the full
// path would count as an error) takes the full path instead.
// FuzzFastPathMatchesFullPath checks that both give the same series and
// self-metrics.

// fastLine is the parts of a line eligible for the fast path.
type fastLine struct {
	name, typ, tags []byte
	hasTags         bool
	value           float64
	rate            float64 // 0: no sample rate given
	relative        bool    // the value starts with + or - (gauges add)
}

// splitFast splits a line of the form name:value|type[|@rate][|#tags]
// (the last two in either order). ok is false for anything else, or for
// a value or rate that the full path would count or refuse.
func splitFast(l []byte) (f fastLine, ok bool) {
	i := bytes.IndexByte(l, ':')
	if i <= 0 {
		return f, false
	}
	f.name, l = l[:i], l[i+1:]
	j := bytes.IndexByte(l, '|')
	if j < 0 {
		return f, false
	}
	value := l[:j]
	// Upstream splits a line without DogStatsD tags into several samples
	// at every ':', and a ':' in the value is DogStatsD's extended
	// aggregation; both take the full path.
	if bytes.IndexByte(value, ':') >= 0 || (bytes.IndexByte(l, ':') >= 0 && !bytes.Contains(l, []byte("|#"))) {
		return f, false
	}
	rest := l[j+1:]
	var hasRate bool
	for n := 0; ; n++ {
		var c []byte
		if k := bytes.IndexByte(rest, '|'); k >= 0 {
			c, rest = rest[:k], rest[k+1:]
		} else {
			c, rest = rest, nil
		}
		switch {
		case n == 0:
			f.typ = c
		case len(c) == 0:
			return f, false
		case c[0] == '@' && !hasRate:
			hasRate = true
			r, err := strconv.ParseFloat(string(c[1:]), 64)
			if err != nil || !(r > 0 && r <= 1) {
				return f, false
			}
			f.rate = r
		case c[0] == '#' && !f.hasTags:
			f.hasTags, f.tags = true, c[1:]
		default:
			return f, false
		}
		if rest == nil {
			break
		}
	}
	switch string(f.typ) {
	case "c", "g":
	case "ms", "h", "d":
		if f.rate > 0 && 1/f.rate > maxLineEvents {
			return f, false
		}
	default:
		return f, false
	}
	v, err := strconv.ParseFloat(string(value), 64)
	if err != nil {
		return f, false
	}
	f.value = v
	f.relative = len(value) > 0 && (value[0] == '+' || value[0] == '-')
	return f, true
}

// events is how many events upstream makes of the line: a timer,
// histogram or distribution sample is repeated 1/rate times.
func (f *fastLine) events() int {
	if f.rate > 0 && len(f.typ) > 0 && f.typ[0] != 'c' && f.typ[0] != 'g' {
		return int(1 / f.rate)
	}
	return 1
}

// fastEntry is what the full path made of a signature.
type fastEntry struct {
	drop  bool // a drop mapping: counted, nothing queued
	tmpl  item // the item the full path queued, but for value and relative
	shard int
	// What the full path counted for a line of this signature: per line,
	// tags received (0 or 1) and malformed tags; per event, the mapping's
	// action.
	tagsReceived, tagErrors float64
	action                  *localCounter
}

// signature writes f's signature into p's scratch buffer and returns it.
func (p *processor) signature(f *fastLine) []byte {
	b := append(p.sigBuf[:0], f.name...)
	b = append(b, 0)
	b = append(b, f.typ...)
	if f.hasTags {
		b = append(b, 0)
		b = append(b, f.tags...)
	}
	p.sigBuf = b
	return b
}

// applyFast applies a line from a remembered signature and reports
// whether it did; if not, nothing was counted or queued, and the line
// takes the full path (which counts or refuses what the fast path would
// not decide on its own).
func (p *processor) applyFast(e *fastEntry, f *fastLine) bool {
	n := f.events()
	if !e.drop {
		v := f.value
		switch {
		case e.tmpl.kind == kindCounter && f.rate > 0:
			v /= f.rate
		case string(f.typ) == "ms":
			v /= 1000 // statsd timers are milliseconds, Prometheus wants seconds
		}
		if m := e.tmpl.mapping; m.Scale.Set {
			v *= m.Scale.Val
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || (e.tmpl.kind == kindCounter && v < 0) {
			return false
		}
		it := e.tmpl
		it.value, it.relative = v, f.relative
		for range n {
			p.enqueue(e.shard, it)
		}
	}
	p.samples.n++
	p.tags.n += e.tagsReceived
	p.tagErrors.n += e.tagErrors
	e.action.n += float64(n)
	p.memoHits += float64(n)
	p.fastN++
	return true
}

// capture records what the full path does with one eligible line.
type capture struct {
	on                     bool
	events, items          int
	action                 *localCounter // the counter the last event's action went to
	tmpl                   item
	shard                  int
	tagsBefore, errsBefore float64
}

func (p *processor) startCapture() {
	p.cap = capture{on: true, tagsBefore: p.tags.n, errsBefore: p.tagErrors.n}
}

// endCapture remembers the signature of a line the full path has just
// applied, if it applied every event of the line the same way.
func (p *processor) endCapture(f *fastLine) {
	c := p.cap
	p.cap.on = false
	n := f.events()
	if c.events != n || c.action == nil {
		return
	}
	e := &fastEntry{
		tagsReceived: p.tags.n - c.tagsBefore,
		tagErrors:    p.tagErrors.n - c.errsBefore,
		action:       c.action,
	}
	switch {
	case c.items == n:
		e.tmpl, e.shard = c.tmpl, c.shard
		e.tmpl.ref = &seriesRef{}
		if e.tmpl.kind != kindGauge {
			e.tmpl.relative = false
		}
	case c.items == 0 && c.action == &p.actDrop:
		e.drop = true
	default:
		return // an event was refused: such lines always take the full path
	}
	if len(p.fast) >= p.memoCfg.memoSize {
		clear(p.fast)
	}
	p.fast[string(p.signature(f))] = e
}

// admission keeps the fast path from remembering signatures seen once:
// with traffic of ever new series (a tag with a request ID, a burst of
// new names) remembering each would cost more than the full path it
// saves. A signature is remembered the second time it is seen while its
// hash still holds its slot in a small direct-mapped table.
type admission struct {
	seed  maphash.Seed
	slots [admissionSlots]uint64
}

const admissionSlots = 4096

// admit reports whether sig has been seen recently, and notes it.
func (p *processor) admit(sig []byte) bool {
	if p.seen == nil {
		p.seen = &admission{seed: maphash.MakeSeed()}
	}
	h := maphash.Bytes(p.seen.seed, sig)
	slot := &p.seen.slots[h%admissionSlots]
	if *slot == h {
		return true
	}
	*slot = h
	return false
}
