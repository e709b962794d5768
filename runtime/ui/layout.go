package ui

// Layout of the pipeline graph, drawn on the server as SVG: a layered
// drawing of the DAG (producers on top, consumers below). Layers come from
// longest-path layering (a node sits one layer below its deepest
// upstream), and the order within each layer from a few barycentre sweeps
// (each node moves towards the mean position of its neighbours in the
// layer above, then below), which removes most edge crossings of the small
// graphs a config declares. Everything is deterministic: the same graph
// always renders to the same bytes (golden tests).

import (
	"fmt"
	"html"
	"net/url"
	"sort"
	"strings"
)

// GraphNode is one component in the graph.
type GraphNode struct {
	ID     string
	Type   string
	Health string // healthy, unhealthy, exited, unknown
	// Upstreams are the components this one references (edges go from
	// each upstream to this node).
	Upstreams []string
}

// Drawing sizes, in SVG user units.
const (
	nodeW   = 220
	nodeH   = 52
	gapX    = 30
	gapY    = 56
	margin  = 12
	maxText = 30 // longer IDs are shortened (the full ID is in <title>)
)

type placed struct {
	GraphNode
	layer, pos int
	x, y       int
}

// layout assigns each node a layer and a position in it.
func layout(nodes []GraphNode) ([]*placed, [][]*placed) {
	byID := make(map[string]*placed, len(nodes))
	ps := make([]*placed, 0, len(nodes))
	for _, n := range nodes {
		p := &placed{GraphNode: n}
		byID[n.ID] = p
		ps = append(ps, p)
	}
	// Longest-path layering; nodes arrive in any order, so iterate with
	// memoisation. A reference cycle cannot load, but guard anyway.
	state := map[string]int{} // 0 new, 1 visiting, 2 done
	var depth func(p *placed) int
	depth = func(p *placed) int {
		switch state[p.ID] {
		case 1:
			return 0
		case 2:
			return p.layer
		}
		state[p.ID] = 1
		l := 0
		for _, u := range p.Upstreams {
			if up := byID[u]; up != nil {
				l = max(l, depth(up)+1)
			}
		}
		p.layer = l
		state[p.ID] = 2
		return l
	}
	nLayers := 0
	for _, p := range ps {
		nLayers = max(nLayers, depth(p)+1)
	}
	layers := make([][]*placed, nLayers)
	for _, p := range ps { // initial order: the order given (topological)
		p.pos = len(layers[p.layer])
		layers[p.layer] = append(layers[p.layer], p)
	}
	down := map[string][]*placed{}
	for _, p := range ps {
		for _, u := range p.Upstreams {
			if up := byID[u]; up != nil {
				down[u] = append(down[u], p)
			}
		}
	}
	// Barycentre sweeps: down using upstream positions, up using
	// downstream positions.
	order := func(layer []*placed, neighbours func(*placed) []*placed) {
		bary := make(map[*placed]float64, len(layer))
		for _, p := range layer {
			ns := neighbours(p)
			if len(ns) == 0 {
				bary[p] = float64(p.pos)
				continue
			}
			sum := 0.0
			for _, n := range ns {
				sum += float64(n.pos)
			}
			bary[p] = sum / float64(len(ns))
		}
		sort.SliceStable(layer, func(i, j int) bool { return bary[layer[i]] < bary[layer[j]] })
		for i, p := range layer {
			p.pos = i
		}
	}
	ups := func(p *placed) []*placed {
		var out []*placed
		for _, u := range p.Upstreams {
			if up := byID[u]; up != nil {
				out = append(out, up)
			}
		}
		return out
	}
	downs := func(p *placed) []*placed { return down[p.ID] }
	for range 4 {
		for l := 1; l < nLayers; l++ {
			order(layers[l], ups)
		}
		for l := nLayers - 2; l >= 0; l-- {
			order(layers[l], downs)
		}
	}
	return ps, layers
}

// RenderGraph draws the graph as an inline SVG. base is the UI's base path
// (ending in /): each node links to base+"component/"+ID.
func RenderGraph(nodes []GraphNode, base string) string {
	if len(nodes) == 0 {
		return ""
	}
	ps, layers := layout(nodes)
	widest := 0
	for _, l := range layers {
		widest = max(widest, len(l))
	}
	width := 2*margin + widest*nodeW + (widest-1)*gapX
	height := 2*margin + len(layers)*nodeH + (len(layers)-1)*gapY
	for li, l := range layers {
		rowW := len(l)*nodeW + (len(l)-1)*gapX
		x0 := (width - rowW) / 2
		for i, p := range l {
			p.x = x0 + i*(nodeW+gapX)
			p.y = margin + li*(nodeH+gapY)
		}
	}
	byID := make(map[string]*placed, len(ps))
	for _, p := range ps {
		byID[p.ID] = p
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="graph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="graph-title">`+"\n", width, height, width, height)
	b.WriteString(`<title id="graph-title">Pipeline graph: ` + fmt.Sprint(len(ps)) + ` components; arrows go from producer to consumer</title>` + "\n")
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>` + "\n")
	// Edges first, so nodes are drawn over them. Sorted for stable output.
	type edge struct{ from, to *placed }
	var edges []edge
	for _, p := range ps {
		for _, u := range p.Upstreams {
			if up := byID[u]; up != nil {
				edges = append(edges, edge{up, p})
			}
		}
	}
	sort.SliceStable(edges, func(i, j int) bool {
		if edges[i].from.ID != edges[j].from.ID {
			return edges[i].from.ID < edges[j].from.ID
		}
		return edges[i].to.ID < edges[j].to.ID
	})
	for _, e := range edges {
		x1, y1 := e.from.x+nodeW/2, e.from.y+nodeH
		x2, y2 := e.to.x+nodeW/2, e.to.y
		my := (y1 + y2) / 2
		fmt.Fprintf(&b, `<path class="edge" d="M%d,%d C%d,%d %d,%d %d,%d" marker-end="url(#arrow)"><title>%s → %s</title></path>`+"\n",
			x1, y1, x1, my, x2, my, x2, y2, esc(e.from.ID), esc(e.to.ID))
	}
	for _, l := range layers {
		for _, p := range l {
			health := p.Health
			if health == "" {
				health = "unknown"
			}
			label := p.ID
			if len(label) > maxText {
				label = label[:maxText-1] + "…"
			}
			fmt.Fprintf(&b, `<a href="%scomponent/%s" class="node health-%s" aria-label="%s, %s">`, esc(base), esc(url.PathEscape(p.ID)), esc(health), esc(p.ID), esc(health))
			fmt.Fprintf(&b, `<title>%s (%s): %s</title>`, esc(p.ID), esc(p.Type), esc(health))
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="6"/>`, p.x, p.y, nodeW, nodeH)
			fmt.Fprintf(&b, `<text x="%d" y="%d" class="node-id">%s</text>`, p.x+10, p.y+21, esc(label))
			fmt.Fprintf(&b, `<text x="%d" y="%d" class="node-health">%s %s</text>`, p.x+10, p.y+40, healthMark(health), esc(health))
			b.WriteString("</a>\n")
		}
	}
	b.WriteString("</svg>")
	return b.String()
}

// healthMark is a symbol that tells health apart without colour.
func healthMark(h string) string {
	switch h {
	case "healthy":
		return "✓"
	case "unhealthy":
		return "✗"
	case "exited":
		return "■"
	}
	return "?"
}

func esc(s string) string { return html.EscapeString(s) }
