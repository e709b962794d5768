package httpjson

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// bigPage is about 9.6 MB: 30,000 pipelines of which the metric reads
// three fields each, among many it does not read.
func bigPage() []byte {
	var b strings.Builder
	b.WriteString(`{"pipelines": [`)
	for i := range 30000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"project": "p%d", "status": "ok", "duration": %d.5, "sha": "%040x", "ref": "refs/heads/main", "user": {"name": "A. Developer", "email": "a@example.com", "id": %d}, "stages": ["build", "test", "deploy"], "web_url": "https://ci.example.com/p/%d", "tags": [1, 2, 3, 4, 5, 6, 7, 8]}`, i, i%600, i, i, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkDecodePage compares what decoding a 9.6 MB page and evaluating
// one series metric over it costs: the whole document as go-cty values (as
// before issue 19) against jsonlimit building only what the metric reads.
func BenchmarkDecodePage(b *testing.B) {
	page := bigPage()
	args, diags := pipelinetest.Decode(b, Name, `
url = "http://api.example"
max_series = 100000
metric "pipeline_duration_seconds" {
  series = [for p in body.pipelines : { value = p.duration, labels = { project = p.project, status = p.status } }]
}
`)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	p := args.(Arguments).plan
	ctx := context.Background()
	// retained-x is the heap the decoded value holds, over the page's
	// size: measured once, after a collection, with the value alive.
	eval := func(b *testing.B, body func() any) {
		b.SetBytes(int64(len(page)))
		b.ReportAllocs()
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		v := body()
		runtime.GC()
		runtime.ReadMemStats(&m1)
		runtime.KeepAlive(v)
		retained := float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(len(page))
		for b.Loop() {
			v := body()
			_ = v
		}
		b.ReportMetric(retained, "retained-x") // after the loop: its reset drops reported metrics
	}
	b.Run("ctyjson-whole", func(b *testing.B) {
		eval(b, func() any {
			ty, err := ctyjson.ImpliedType(page)
			if err != nil {
				b.Fatal(err)
			}
			v, err := ctyjson.Unmarshal(page, ty)
			if err != nil {
				b.Fatal(err)
			}
			col := newCollector(ctx, p, func(string, string, error) {})
			col.addPage(v)
			col.snapshot()
			return v
		})
	})
	b.Run("jsonlimit-projected", func(b *testing.B) {
		eval(b, func() any {
			v, err := decodeJSON(ctx, p, page)
			if err != nil {
				b.Fatal(err)
			}
			col := newCollector(ctx, p, func(string, string, error) {})
			col.addPage(v)
			snap := col.snapshot()
			if snap.series != 30000 {
				b.Fatalf("%d series", snap.series)
			}
			return v
		})
	})
}
