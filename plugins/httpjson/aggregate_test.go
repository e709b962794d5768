package httpjson_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/plugins/httpjson"
)

// paginatedPipelines serves 23 pipelines over 4 pages linked by
// rel="next", as the CI API of issue 23 did: by status 10 success, 7
// failed, 3 running, 3 canceled, spread so that every page has several
// statuses and some page repeats one. Page 1 alone has 4/3/2/1.
func paginatedPipelines(t *testing.T) *api {
	pages := [][]string{
		{"success", "success", "success", "success", "failed", "failed", "failed", "running", "running", "canceled"},
		{"success", "success", "success", "failed", "failed", "canceled"},
		{"success", "success", "failed", "running"},
		{"success", "failed", "canceled"},
	}
	return newAPI(t, func(w http.ResponseWriter, r *http.Request) {
		n := 1
		fmt.Sscan(r.URL.Query().Get("page"), &n)
		if n < 1 || n > len(pages) {
			http.NotFound(w, r)
			return
		}
		if n < len(pages) {
			w.Header().Set("Link", fmt.Sprintf(`</?page=%d>; rel="next"`, n+1))
		}
		var items []string
		for i, st := range pages[n-1] {
			// Durations: page*100 + index, so min and max say which page
			// and element they came from.
			items = append(items, fmt.Sprintf(`{"status": %q, "duration": %d, "project": "shop"}`, st, n*100+i))
		}
		fmt.Fprintf(w, `{"pipelines": [%s]}`, strings.Join(items, ","))
	})
}

// TestAggregateAcrossPages: with aggregate, the series with the same
// labels over every page of one poll are combined (count, sum, min, max)
// instead of dropped as duplicates, and each poll starts afresh.
func TestAggregateAcrossPages(t *testing.T) {
	srv := paginatedPipelines(t)
	h := pipelinetest.New(t, httpjson.Name, config(srv.URL, `
metric "ci_pipelines" {
  help      = "Pipelines by status, over every page."
  aggregate = "count"
  series    = [for p in body.pipelines : { labels = { status = p.status } }]
}
metric "ci_pipeline_duration_seconds_total" {
  type      = "counter"
  aggregate = "sum"
  series    = [for p in body.pipelines : { value = p.duration, labels = { status = p.status } }]
}
metric "ci_pipeline_duration_min_seconds" {
  aggregate = "min"
  series    = [for p in body.pipelines : { value = p.duration, labels = { status = p.status } }]
}
metric "ci_pipeline_duration_max_seconds" {
  aggregate = "max"
  series    = [for p in body.pipelines : { value = p.duration, labels = { status = p.status } }]
}
metric "ci_pipelines_page1_only" {
  series = [for p in body.pipelines : { value = 1, labels = { status = p.status } }]
}
`))
	h.Start()
	waitPolls(t, h, "success", 2) // two polls: nothing carries over
	got := series(t, h.Gatherer())
	want := map[string]float64{
		`ci_pipelines{status="success"}`:  10,
		`ci_pipelines{status="failed"}`:   7,
		`ci_pipelines{status="running"}`:  3,
		`ci_pipelines{status="canceled"}`: 3,
		// success: page 1 100..103, page 2 200..202, page 3 300..301, page 4 400
		`ci_pipeline_duration_seconds_total{status="success"}`: 100 + 101 + 102 + 103 + 200 + 201 + 202 + 300 + 301 + 400,
		`ci_pipeline_duration_min_seconds{status="success"}`:   100,
		`ci_pipeline_duration_max_seconds{status="success"}`:   400,
		`ci_pipeline_duration_min_seconds{status="canceled"}`:  109,
		`ci_pipeline_duration_max_seconds{status="running"}`:   303,
		// Without aggregate: the first series of each label set, the rest
		// dropped as duplicate (the old behaviour, still the default).
		`ci_pipelines_page1_only{status="success"}`: 1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	dropped := series(t, h.Registry)
	if d := dropped[`sluice_httpjson_series_dropped_total{metric="ci_pipelines",reason="duplicate"}`]; d != 0 {
		t.Errorf("aggregated series counted as duplicates: %v", d)
	}
	if d := dropped[`sluice_httpjson_series_dropped_total{metric="ci_pipelines_page1_only",reason="duplicate"}`]; d < 19 {
		t.Errorf("duplicates without aggregate = %v, want 19 per poll", d)
	}
	if p := dropped["sluice_httpjson_pages{}"]; p != 4 {
		t.Errorf("pages = %v, want 4", p)
	}
}

// TestAggregateBadElements: a bad element costs itself, not the aggregate
// of the others; a count reads no value, a sum needs one.
func TestAggregateBadElements(t *testing.T) {
	srv := newAPI(t, jsonBody(`{"items": [
  {"k": "a", "v": 1}, {"k": "a", "v": "x"}, {"k": "a"}, {"k": "a", "v": 2}, {"v": 5}
]}`))
	h := pipelinetest.New(t, httpjson.Name, config(srv.URL, `
metric "sum" {
  aggregate = "sum"
  series    = [for i in body.items : { value = i.v, labels = { k = i.k } }]
}
metric "count" {
  aggregate = "count"
  series    = [for i in body.items : { labels = { k = try(i.k, "none") } }]
}
`))
	h.Start()
	waitPolls(t, h, "success", 1)
	got := series(t, h.Gatherer())
	if got[`sum{k="a"}`] != 3 || got[`count{k="a"}`] != 4 || got[`count{k="none"}`] != 1 {
		t.Errorf("got %v: want sum a=3 (bad values dropped), count a=4, none=1", got)
	}
	if d := series(t, h.Registry)[`sluice_httpjson_series_dropped_total{metric="sum",reason="not_number"}`]; d < 1 {
		t.Errorf("the non-number was not counted: %v", series(t, h.Registry))
	}
}
