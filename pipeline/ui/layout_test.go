package ui

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// shapes are the graphs of the golden tests, in topological order as the
// controller lists them.
var shapes = map[string][]GraphNode{
	"chain": {
		{ID: "statsd_receiver.app", Type: "statsd_receiver", Health: "healthy"},
		{ID: "relabel.app", Type: "relabel", Health: "unhealthy", Upstreams: []string{"statsd_receiver.app"}},
		{ID: "metrics_sink.default", Type: "metrics_sink", Health: "healthy", Upstreams: []string{"relabel.app"}},
	},
	"fan-in": {
		{ID: "statsd_receiver.a", Type: "statsd_receiver", Health: "healthy"},
		{ID: "postgres_source.db", Type: "postgres_source", Health: "exited"},
		{ID: "statsd_receiver.b", Type: "statsd_receiver", Health: "unknown"},
		{ID: "metrics_sink.all", Type: "metrics_sink", Health: "healthy", Upstreams: []string{"statsd_receiver.a", "postgres_source.db", "statsd_receiver.b"}},
	},
	"fan-out": {
		{ID: "statsd_receiver.app", Type: "statsd_receiver", Health: "healthy"},
		{ID: "relabel.keep", Type: "relabel", Health: "healthy", Upstreams: []string{"statsd_receiver.app"}},
		{ID: "relabel.drop", Type: "relabel", Health: "healthy", Upstreams: []string{"statsd_receiver.app"}},
		{ID: "metrics_sink.raw", Type: "metrics_sink", Health: "healthy", Upstreams: []string{"statsd_receiver.app"}},
	},
	"diamond": {
		{ID: "statsd_receiver.app", Type: "statsd_receiver", Health: "healthy"},
		{ID: "relabel.left", Type: "relabel", Health: "healthy", Upstreams: []string{"statsd_receiver.app"}},
		{ID: "relabel.right", Type: "relabel", Health: "unhealthy", Upstreams: []string{"statsd_receiver.app"}},
		{ID: "metrics_sink.default", Type: "metrics_sink", Health: "healthy", Upstreams: []string{"relabel.left", "relabel.right"}},
	},
}

func TestGraphGolden(t *testing.T) {
	for name, nodes := range shapes {
		t.Run(name, func(t *testing.T) {
			got := RenderGraph(nodes, "/prefix/")
			path := filepath.Join("testdata", "graph-"+name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("graph %s differs from %s (run go test -update after checking):\n%s", name, path, got)
			}
			// Independently of the golden bytes: every node is a link to
			// its page and says its health in text.
			for _, n := range nodes {
				if !strings.Contains(got, `href="/prefix/component/`+n.ID+`"`) {
					t.Errorf("no link to %s", n.ID)
				}
				if !strings.Contains(got, `aria-label="`+n.ID+`, `+n.Health+`"`) {
					t.Errorf("no health text for %s", n.ID)
				}
			}
		})
	}
}

var nodeRE = regexp.MustCompile(`<rect x="(\d+)" y="(\d+)"`)

// TestLayoutLayers checks the layering rules on the shapes, not on bytes:
// each node is below all of its upstreams, in the lowest layer that allows.
func TestLayoutLayers(t *testing.T) {
	want := map[string]map[string]int{
		"chain":   {"statsd_receiver.app": 0, "relabel.app": 1, "metrics_sink.default": 2},
		"fan-in":  {"statsd_receiver.a": 0, "postgres_source.db": 0, "statsd_receiver.b": 0, "metrics_sink.all": 1},
		"fan-out": {"statsd_receiver.app": 0, "relabel.keep": 1, "relabel.drop": 1, "metrics_sink.raw": 1},
		"diamond": {"statsd_receiver.app": 0, "relabel.left": 1, "relabel.right": 1, "metrics_sink.default": 2},
	}
	for name, nodes := range shapes {
		ps, _ := layout(nodes)
		for _, p := range ps {
			if p.layer != want[name][p.ID] {
				t.Errorf("%s: %s in layer %d, want %d", name, p.ID, p.layer, want[name][p.ID])
			}
		}
	}
}

// TestLayoutReducesCrossings: a graph given in an order that crosses edges
// (a1->b2, a2->b1) is drawn without crossing them.
func TestLayoutReducesCrossings(t *testing.T) {
	nodes := []GraphNode{
		{ID: "a1"}, {ID: "a2"},
		{ID: "b1", Upstreams: []string{"a2"}}, {ID: "b2", Upstreams: []string{"a1"}},
	}
	ps, _ := layout(nodes)
	pos := map[string]int{}
	for _, p := range ps {
		pos[p.ID] = p.pos
	}
	if (pos["a1"] < pos["a2"]) != (pos["b2"] < pos["b1"]) {
		t.Errorf("edges cross: positions %v", pos)
	}
}

func TestGraphEscapes(t *testing.T) {
	got := RenderGraph([]GraphNode{{ID: `x.<script>"`, Type: "t", Health: "healthy"}}, "/")
	if strings.Contains(got, "<script>") || strings.Contains(got, `"</text>`) {
		t.Errorf("unescaped ID in SVG:\n%s", got)
	}
	if RenderGraph(nil, "/") != "" {
		t.Error("an empty graph should render nothing")
	}
	if len(nodeRE.FindAllString(got, -1)) != 1 {
		t.Errorf("want one node:\n%s", got)
	}
}
