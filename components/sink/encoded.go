package sink

import (
	"compress/gzip"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluicehq/sluice/encoded"
	"github.com/sluicehq/sluice/pipeline"
)

// textInputs are the inputs of st as encoded.Gatherers, or nil when none
// of them hands out encoded families (then every scrape gathers). An input
// that does not (agent.metrics beside a statsd_receiver, the sidecar's
// shape) is gathered and encoded at each scrape (gatheredText), so that
// one small plain input does not send the whole page down the gather path.
func textInputs(inputs []prometheus.Gatherer) []encoded.Gatherer {
	out := make([]encoded.Gatherer, 0, len(inputs))
	native := false
	for _, g := range inputs {
		if eg, ok := pipeline.UnwrapGatherer(g).(encoded.Gatherer); ok {
			out = append(out, eg)
			native = true
			continue
		}
		out = append(out, gatheredText{g})
	}
	if !native {
		return nil
	}
	return out
}

// gatheredText encodes an input that has no encoded families of its own.
// An error (a partial gather included) makes the scrape fall back to the
// gather path, which counts and logs it as for any input.
type gatheredText struct{ g prometheus.Gatherer }

func (t gatheredText) GatherText() ([]encoded.Family, error) {
	mfs, err := t.g.Gather()
	if err != nil {
		return nil, err
	}
	return encoded.Encode(mfs)
}

// serveEncoded serves the scrape r from its inputs' encoded families when
// that gives exactly what promhttp would write from a gather: every input
// hands out encoded families (encoded.Gatherer), no family name comes from
// two inputs (those are merged), no const labels are added, no timestamp
// has to be stripped, the scraper takes the text format and, for names
// that are not legacy Prometheus names, takes them unescaped. It reports
// false, having written nothing, otherwise; the scrape then gathers. The
// bytes are copied as they are: a scrape costs a copy of the page, not a
// conversion and encoding of every series.
func (c *Component) serveEncoded(w http.ResponseWriter, r *http.Request, st *state) bool {
	if st.text == nil || len(st.consts) > 0 || r.URL.Query().Has("name[]") {
		return false
	}
	var format expfmt.Format
	if st.openMetrics {
		format = expfmt.NegotiateIncludingOpenMetrics(r.Header)
	} else {
		format = expfmt.Negotiate(r.Header)
	}
	if format.FormatType() != expfmt.TypeTextPlain {
		return false
	}
	useGzip, ok := encoding(r.Header.Get("Accept-Encoding"))
	if !ok {
		return false
	}
	escape := format.ToEscapingScheme() != model.NoEscaping
	var fams []encoded.Family
	// versions are the inputs' versions while every input has them
	// (encoded.Versioned): then a compressed page can be reused.
	versions := make([]uint64, 0, len(st.text))
	for _, g := range st.text {
		var fs []encoded.Family
		var err error
		if vg, ok := g.(encoded.Versioned); ok && versions != nil {
			var v uint64
			fs, v, err = vg.GatherTextVersion()
			versions = append(versions, v)
		} else {
			versions = nil
			fs, err = g.GatherText()
		}
		if err != nil {
			return false // the gather counts and logs the error
		}
		fams = append(fams, fs...)
	}
	if len(st.text) > 1 {
		sort.SliceStable(fams, func(i, j int) bool { return fams[i].Name < fams[j].Name })
	}
	for i, f := range fams {
		if (i > 0 && fams[i-1].Name == f.Name) || (f.Timestamps && !st.honorTS) || (f.Escaped && escape) {
			return false
		}
	}
	w.Header().Set("Content-Type", string(format))
	if useGzip {
		w.Header().Set("Content-Encoding", "gzip")
		if versions != nil {
			_, _ = w.Write(c.gzipped(st, versions, fams))
			return true
		}
		gz := c.gzips.Get().(*gzip.Writer)
		gz.Reset(w)
		defer func() {
			_ = gz.Close()
			c.gzips.Put(gz)
		}()
		writeFamilies(gz, fams)
		return true
	}
	writeFamilies(w, fams)
	return true
}

// writeFamilies writes the families' bytes as they are; a write error is
// a scraper that left: nothing more to serve it.
func writeFamilies(w io.Writer, fams []encoded.Family) {
	for _, f := range fams {
		if _, err := w.Write(f.Text); err != nil {
			return
		}
	}
}

// encoding reads Accept-Encoding as promhttp does for the encodings it
// offers (gzip, else none): whether to gzip, and false for a header this
// simple reading does not decide (quality values: promhttp serves those).
func encoding(header string) (useGzip, ok bool) {
	if header == "" {
		return false, true
	}
	if strings.Contains(header, ";") {
		return false, false
	}
	for _, e := range strings.Split(header, ",") {
		if strings.TrimSpace(e) == "gzip" {
			return true, true
		}
	}
	return false, true
}
