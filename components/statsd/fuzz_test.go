package statsd

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// FuzzIngestLine feeds arbitrary packets through the whole ingest path
// (parse, map, apply into the shards, gather) and checks that no panic
// escapes, that none had to be recovered (a recovered panic is a bug the
// checks before client_golang missed), and that gathering yields valid
// families. Run it with
//
//	go test -run '^$' -fuzz FuzzIngestLine -fuzztime 60s ./components/statsd/
func FuzzIngestLine(f *testing.F) {
	for _, s := range []string{
		"a:1|c", "lat:1|ms|#quantile:0.5", "lat:1|h|#le:0.5", "lat,le=1:1|d", "lat#le=1:1|ms",
		"lat[quantile=1]:1|ms", "sum.x:1|ms|#quantile:1", "h.x:1|h|#le:2", "x:NaN|c", "x:1|c|@1e-320",
		"x:1|c|@NaN", "x:1|ms|@0.00001", "g:+Inf|g", "g:-5|g", "a:1:2:3|d|@0.5|#a:b", "a:1|c|#__name__:x",
		"a:1|c|c:container", "a:1|c|T1656581400", "a.b.c:1|c\nd.e:2|g", "a:1|s", "a_count:1|c\na:1|ms",
		"a_bucket:1|c\nh.a:1|h", "ä:1|c", "a:1|c|#le", "a:1|c|#=", "shop.x.orders:2|c|#shop:y",
	} {
		f.Add(s)
	}
	// The mappings of the fast path's differential test: labels, honor_labels,
	// summaries, a regex with a huge scale, drop.
	h := pipelinetest.New(f, "statsd_receiver", differentialConfig)
	r := h.Component.(*Receiver)
	f.Fuzz(func(t *testing.T, packet string) {
		p := r.newProcessor()
		p.packet([]byte(packet))
		p.flush()
		// The TCP path splits the same bytes into lines itself.
		lr := lineReader{buf: make([]byte, 64), max: 256}
		_ = lr.run(strings.NewReader(packet), p.line, func() {}, p.flush)
		if n := testutil.ToFloat64(r.m.errorEventStats.WithLabelValues(reasonPanic)); n != 0 {
			t.Fatalf("%v panics recovered ingesting %q", n, packet)
		}
		if _, err := r.series().Gather(); err != nil {
			t.Fatalf("gather after %q: %v", packet, err)
		}
	})
}
