package ui

import (
	"flag"
	"fmt"
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

// FuzzLayout: any DAG (and any garbage: unknown upstreams, self references,
// cycles, odd IDs) renders, every node below all of its known upstreams
// (when acyclic), each node once in its layer.
func FuzzLayout(f *testing.F) {
	f.Add([]byte{3, 0b001, 0b010}, "healthy")
	f.Add([]byte{4, 0, 1, 1, 6}, "unhealthy")
	f.Add([]byte{8, 255, 255, 255, 255, 255, 255, 255, 255}, "")
	f.Fuzz(func(t *testing.T, shape []byte, health string) {
		if len(shape) == 0 {
			return
		}
		n := int(shape[0]%16) + 1
		nodes := make([]GraphNode, n)
		for i := range nodes {
			nodes[i] = GraphNode{ID: fmt.Sprintf("c.%d", i), Type: "t", Health: health}
			if i+1 < len(shape) {
				// Bit j of byte i+1: node i references node j (j < i keeps
				// it acyclic; j >= i adds self references and cycles).
				for j := 0; j < 8 && j < n; j++ {
					if shape[i+1]&(1<<j) != 0 {
						nodes[i].Upstreams = append(nodes[i].Upstreams, fmt.Sprintf("c.%d", j))
					}
				}
			}
		}
		nodes[0].Upstreams = append(nodes[0].Upstreams, "not.there")
		svg := RenderGraph(nodes, "/")
		for _, nd := range nodes {
			if !strings.Contains(svg, `href="/component/`+nd.ID+`"`) {
				t.Fatalf("no link to %s", nd.ID)
			}
		}
		ps, layers := layout(nodes)
		count := 0
		for _, l := range layers {
			count += len(l)
		}
		if count != n || len(ps) != n {
			t.Fatalf("%d nodes placed in layers, want %d", count, n)
		}
		byID := map[string]*placed{}
		for _, p := range ps {
			byID[p.ID] = p
		}
		acyclic := true
		for i, nd := range nodes {
			for _, u := range nd.Upstreams {
				var j int
				if _, err := fmt.Sscanf(u, "c.%d", &j); err == nil && j >= i {
					acyclic = false
				}
			}
		}
		if !acyclic {
			return
		}
		for _, p := range ps {
			for _, u := range p.Upstreams {
				if up := byID[u]; up != nil && up.layer >= p.layer {
					t.Fatalf("%s (layer %d) not below its upstream %s (layer %d)", p.ID, p.layer, u, up.layer)
				}
			}
		}
	})
}
