package exec

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// FuzzParse feeds arbitrary output through the parsing path: nothing may
// panic, and what parse accepts is what a registry would serve.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"# HELP up Up.\n# TYPE up gauge\nup 1\n",
		"a{x=\"1\"} 1 1700000000000\na{x=\"2\"} NaN\n",
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
		"# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n",
		"up 1\nup 2\n", "up{", "{\"utf8.name\"} 1\n", "# TYPE c counter\nc -1\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		fams, n, err := parse(out)
		if err != nil {
			return
		}
		count := 0
		for _, fam := range fams {
			count += len(fam.GetMetric())
		}
		if count != n {
			t.Fatalf("parse counted %d series, families hold %d", n, count)
		}
		reg := prometheus.NewRegistry()
		g := prometheus.Gatherers{reg, prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return fams, nil })}
		if _, err := g.Gather(); err != nil {
			t.Fatalf("accepted output does not gather: %v", err)
		}
	})
}
