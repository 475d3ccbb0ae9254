package query

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"capfleet.dev/capfleet/processor/store"
)

// Graph is who talked to whom: hosts as nodes, pairs of hosts as undirected edges weighted by the flows,
// packets and IP bytes between them, and, with a window, the windows each was active in (spells), so a
// viewer can play the network over time.
type Graph struct {
	Window time.Duration
	// Source is what the graph was built from: SourceFlows or SourceRollups.
	Source string
	Nodes  []GraphNode
	Edges  []GraphEdge
}

// GraphNode is a host.
type GraphNode struct {
	ID     string
	Spells []Spell
}

// GraphEdge is a pair of hosts, Source the smaller address.
type GraphEdge struct {
	Source, Target        string
	Flows, Packets, Bytes uint64
	// Windows are the start of every window the pair had a flow active in, and how many.
	Windows []WindowCount
	Spells  []Spell
}

// WindowCount is the flows of an edge active in one window.
type WindowCount struct {
	Start time.Time
	Flows uint64
}

// Spell is a time interval [Start, End) in which a node or edge was active.
type Spell struct{ Start, End time.Time }

// BuildGraph makes the graph of flows: a flow counts whole on its pair's edge, and in every window
// (window > 0) it was active in. Edges under minBytes are left out, and the hosts left without one.
func BuildGraph(flows []store.Flow, window time.Duration, minBytes uint64) Graph {
	b := newGraphBuilder(window)
	for i := range flows {
		f := &flows[i]
		a, z := f.OrigAddr, f.RespAddr
		if pairOrder(z, a) {
			a, z = z, a
		}
		e, windows := b.edge(a.String(), z.String())
		e.Flows++
		e.Packets += f.OrigPkts + f.RespPkts
		e.Bytes += f.OrigIPBytes + f.RespIPBytes
		if window > 0 {
			for w := f.Start.Truncate(window); !w.After(f.End); w = w.Add(window) {
				windows[w.UnixNano()]++
			}
		}
	}
	g := b.graph(minBytes)
	g.Source = SourceFlows
	return g
}

// BuildGraphFromRollups makes the graph of the pipeline's edge rollups: per pair, the packets, IP bytes
// and flows of its windows added up, and a window of the graph (window > 0, a multiple of the rollups'
// width) is one the pair exchanged packets in, with the flows that started in it. So a flow counts in
// the window it started in, and a quiet stretch inside a long flow is no spell, unlike BuildGraph.
func BuildGraphFromRollups(rows []store.EdgeRow, window time.Duration, minBytes uint64) (Graph, error) {
	b := newGraphBuilder(window)
	for i := range rows {
		r := &rows[i]
		if window > 0 && (r.Width <= 0 || window%r.Width != 0) {
			return Graph{}, fmt.Errorf("--window %s: the edge rollups are %s wide; ask for a multiple of it", window, r.Width)
		}
		e, windows := b.edge(r.A.String(), r.B.String())
		e.Flows += r.Flows
		e.Packets += r.Packets
		e.Bytes += r.Bytes
		if window > 0 {
			windows[r.Start.Truncate(window).UnixNano()] += r.Flows
		}
	}
	g := b.graph(minBytes)
	g.Source = SourceRollups
	return g, nil
}

type graphBuilder struct {
	window  time.Duration
	edges   map[[2]string]*GraphEdge
	windows map[[2]string]map[int64]uint64
}

func newGraphBuilder(window time.Duration) *graphBuilder {
	return &graphBuilder{window: window, edges: map[[2]string]*GraphEdge{}, windows: map[[2]string]map[int64]uint64{}}
}

// edge is the edge of the pair (a < b) and its windows' counts.
func (b *graphBuilder) edge(a, z string) (*GraphEdge, map[int64]uint64) {
	k := [2]string{a, z}
	e := b.edges[k]
	if e == nil {
		e = &GraphEdge{Source: a, Target: z}
		b.edges[k] = e
		b.windows[k] = map[int64]uint64{}
	}
	return e, b.windows[k]
}

func (b *graphBuilder) graph(minBytes uint64) Graph {
	g := Graph{Window: b.window}
	nodeSpells := map[string][]Spell{}
	for k, e := range b.edges {
		if e.Bytes < minBytes {
			continue
		}
		starts := make([]int64, 0, len(b.windows[k]))
		for w := range b.windows[k] {
			starts = append(starts, w)
		}
		sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
		for _, w := range starts {
			e.Windows = append(e.Windows, WindowCount{Start: time.Unix(0, w).UTC(), Flows: b.windows[k][w]})
		}
		e.Spells = spellsOf(e.Windows, b.window)
		g.Edges = append(g.Edges, *e)
		for _, h := range k {
			nodeSpells[h] = append(nodeSpells[h], e.Spells...)
		}
	}
	sort.Slice(g.Edges, func(i, j int) bool {
		if g.Edges[i].Source != g.Edges[j].Source {
			return g.Edges[i].Source < g.Edges[j].Source
		}
		return g.Edges[i].Target < g.Edges[j].Target
	})
	for h, spells := range nodeSpells {
		g.Nodes = append(g.Nodes, GraphNode{ID: h, Spells: mergeSpells(spells)})
	}
	sort.Slice(g.Nodes, func(i, j int) bool { return g.Nodes[i].ID < g.Nodes[j].ID })
	return g
}

// What a graph is built from.
const (
	SourceAuto    = "auto"
	SourceFlows   = "flows"
	SourceRollups = "rollups"
)

// RollupMinRange is the shortest range for which LoadGraph, left to choose, reads the edge rollups:
// a shorter one reads few flows, and the flows give exact spells.
const RollupMinRange = time.Hour

// GraphOptions select a graph.
type GraphOptions struct {
	From, To time.Time
	Window   time.Duration // 0: static
	MinBytes uint64
	Sensor   string // "": all
	// Source is SourceFlows, SourceRollups, or SourceAuto (""): the rollups for a range of
	// RollupMinRange or more when there are any and Window is a multiple of their width, else the flows.
	Source string
}

// maxRollupWidth is the widest edge rollup window a pipeline may write (it must divide an hour).
const maxRollupWidth = store.RollupBucket

// LoadGraph reads what the options ask for from Cassandra and builds the graph; Graph.Source says what
// it was built from, and note, when not empty, why auto chose the flows.
func LoadGraph(ctx context.Context, r *store.Reader, o GraphOptions) (g Graph, note string, err error) {
	switch o.Source {
	case "", SourceAuto, SourceFlows, SourceRollups:
	default:
		return Graph{}, "", fmt.Errorf("--source %q: want auto, flows or rollups", o.Source)
	}
	if o.Window < 0 {
		return Graph{}, "", fmt.Errorf("--window %s: must not be negative", o.Window)
	}
	useRollups := o.Source == SourceRollups
	if o.Source == "" || o.Source == SourceAuto {
		useRollups = o.To.Sub(o.From) >= RollupMinRange
		if !useRollups {
			note = fmt.Sprintf("the range is shorter than %s", RollupMinRange)
		}
	}
	if useRollups {
		rows, err := edgeRows(ctx, r, o.From, o.To, o.Sensor)
		switch {
		case err != nil && o.Source == SourceRollups:
			return Graph{}, "", err
		case err != nil:
			// A keyspace of an older schema has no rollups: the flows answer all the same.
			note = "edge rollups unreadable: " + err.Error()
		case o.Source == SourceRollups:
			g, err := BuildGraphFromRollups(rows, o.Window, o.MinBytes)
			return g, "", err
		case len(rows) == 0:
			note = "no edge rollups in the range"
		case o.Window > 0 && o.Window%rows[0].Width != 0:
			note = fmt.Sprintf("--window %s is no multiple of the rollups' %s", o.Window, rows[0].Width)
		default:
			g, err := BuildGraphFromRollups(rows, o.Window, o.MinBytes)
			if err == nil {
				return g, "", nil
			}
			note = err.Error()
		}
	}
	flows, err := StoredFlows(ctx, r, o.From, o.To, o.Sensor)
	if err != nil {
		return Graph{}, "", err
	}
	return BuildGraph(flows, o.Window, o.MinBytes), note, nil
}

// edgeRows are the rollup rows whose window overlaps [from, to], of one sensor when sensor is set.
func edgeRows(ctx context.Context, r *store.Reader, from, to time.Time, sensor string) ([]store.EdgeRow, error) {
	rows, err := r.Edges(ctx, from.Add(-maxRollupWidth), to)
	if err != nil {
		return nil, err
	}
	kept := rows[:0]
	for _, e := range rows {
		if e.Start.Add(e.Width).After(from) && (sensor == "" || e.Sensor == sensor) {
			kept = append(kept, e)
		}
	}
	return kept, nil
}

// spellsOf joins consecutive windows into intervals.
func spellsOf(ws []WindowCount, window time.Duration) []Spell {
	var out []Spell
	for _, w := range ws {
		end := w.Start.Add(window)
		if n := len(out); n > 0 && !out[n-1].End.Before(w.Start) {
			out[n-1].End = end
			continue
		}
		out = append(out, Spell{w.Start, end})
	}
	return out
}

// mergeSpells sorts spells and joins those that touch or overlap.
func mergeSpells(s []Spell) []Spell {
	sort.Slice(s, func(i, j int) bool { return s[i].Start.Before(s[j].Start) })
	var out []Spell
	for _, sp := range s {
		if n := len(out); n > 0 && !out[n-1].End.Before(sp.Start) {
			if sp.End.After(out[n-1].End) {
				out[n-1].End = sp.End
			}
			continue
		}
		out = append(out, sp)
	}
	return out
}

// WriteJSON writes the node-link form D3, Cytoscape and networkx's node_link_graph read.
func (g Graph) WriteJSON(w io.Writer) error {
	type link struct {
		Source  string        `json:"source"`
		Target  string        `json:"target"`
		Flows   uint64        `json:"flows"`
		Packets uint64        `json:"packets"`
		Bytes   uint64        `json:"ip_bytes"`
		Windows []WindowCount `json:"windows,omitempty"`
	}
	type node struct {
		ID string `json:"id"`
	}
	out := struct {
		Directed   bool              `json:"directed"`
		Multigraph bool              `json:"multigraph"`
		Graph      map[string]string `json:"graph"`
		Nodes      []node            `json:"nodes"`
		Links      []link            `json:"links"`
	}{Graph: map[string]string{"window": g.Window.String(), "source": g.Source}, Nodes: []node{}, Links: []link{}}
	for _, n := range g.Nodes {
		out.Nodes = append(out.Nodes, node{n.ID})
	}
	for _, e := range g.Edges {
		out.Links = append(out.Links, link{e.Source, e.Target, e.Flows, e.Packets, e.Bytes, e.Windows})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(out)
}

// WriteDOT writes Graphviz's language, edges labelled with their bytes.
func (g Graph) WriteDOT(w io.Writer) error {
	var b strings.Builder
	b.WriteString("graph capfleet {\n")
	for _, n := range g.Nodes {
		fmt.Fprintf(&b, "  %s;\n", strconv.Quote(n.ID))
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&b, "  %s -- %s [weight=%d, label=\"%d B, %d pkts, %d flows\"];\n",
			strconv.Quote(e.Source), strconv.Quote(e.Target), e.Bytes, e.Bytes, e.Packets, e.Flows)
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// GEXF 1.3 (gexf.net): static, or dynamic with spells when the graph has a window.
type (
	gexfDoc struct {
		XMLName xml.Name  `xml:"gexf"`
		XMLNS   string    `xml:"xmlns,attr"`
		Version string    `xml:"version,attr"`
		Meta    gexfMeta  `xml:"meta"`
		Graph   gexfGraph `xml:"graph"`
	}
	gexfMeta struct {
		Creator     string `xml:"creator"`
		Description string `xml:"description"`
	}
	gexfGraph struct {
		EdgeType   string        `xml:"defaultedgetype,attr"`
		Mode       string        `xml:"mode,attr"`
		TimeFormat string        `xml:"timeformat,attr,omitempty"`
		TimeRepr   string        `xml:"timerepresentation,attr,omitempty"`
		Attributes gexfAttrClass `xml:"attributes"`
		Nodes      []gexfNode    `xml:"nodes>node"`
		Edges      []gexfEdge    `xml:"edges>edge"`
	}
	gexfAttrClass struct {
		Class string     `xml:"class,attr"`
		Attrs []gexfAttr `xml:"attribute"`
	}
	gexfAttr struct {
		ID    string `xml:"id,attr"`
		Title string `xml:"title,attr"`
		Type  string `xml:"type,attr"`
	}
	gexfNode struct {
		ID     string      `xml:"id,attr"`
		Label  string      `xml:"label,attr"`
		Spells *gexfSpells `xml:"spells,omitempty"`
	}
	// gexfSpells is a pointer in its parents: GEXF wants no <spells> at all rather than an empty one.
	gexfSpells struct {
		Spell []gexfSpell `xml:"spell"`
	}
	gexfEdge struct {
		ID     string      `xml:"id,attr"`
		Source string      `xml:"source,attr"`
		Target string      `xml:"target,attr"`
		Weight uint64      `xml:"weight,attr"`
		Values []gexfValue `xml:"attvalues>attvalue"`
		Spells *gexfSpells `xml:"spells,omitempty"`
	}
	gexfValue struct {
		For   string `xml:"for,attr"`
		Value uint64 `xml:"value,attr"`
	}
	gexfSpell struct {
		Start string `xml:"start,attr"`
		End   string `xml:"end,attr"`
	}
)

// Time formats of a dynamic GEXF.
const (
	// GEXFDateTime writes spells as RFC 3339 times (timeformat dateTime): Gephi's timeline shows dates.
	GEXFDateTime = "datetime"
	// GEXFEpoch writes spells as seconds since the epoch (timeformat double), for readers that do not
	// parse dateTime, such as networkx (networkx/networkx#3246).
	GEXFEpoch = "epoch"
)

// WriteGEXF writes GEXF 1.3, the format Gephi opens; with a window, nodes and edges carry spells in
// dateTime, so Gephi's timeline plays the network. Edge weight is the IP bytes.
func (g Graph) WriteGEXF(w io.Writer) error { return g.WriteGEXFTime(w, GEXFDateTime) }

// WriteGEXFTime is WriteGEXF with the spells' time format, GEXFDateTime or GEXFEpoch.
func (g Graph) WriteGEXFTime(w io.Writer, timeFormat string) error {
	doc := gexfDoc{XMLNS: "http://gexf.net/1.3", Version: "1.3",
		Meta: gexfMeta{Creator: "capfleet", Description: "hosts and the flows between them"},
		Graph: gexfGraph{EdgeType: "undirected", Mode: "static", Attributes: gexfAttrClass{Class: "edge", Attrs: []gexfAttr{
			{"flows", "flows", "long"}, {"packets", "packets", "long"}, {"ip_bytes", "ip_bytes", "long"}}}}}
	format := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	switch timeFormat {
	case GEXFDateTime:
		doc.Graph.TimeFormat = "dateTime"
	case GEXFEpoch:
		doc.Graph.TimeFormat = "double"
		format = func(t time.Time) string { return strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', -1, 64) }
	default:
		return fmt.Errorf("GEXF time format %q: want %s or %s", timeFormat, GEXFDateTime, GEXFEpoch)
	}
	if g.Window > 0 {
		doc.Graph.Mode, doc.Graph.TimeRepr = "dynamic", "interval"
	} else {
		doc.Graph.TimeFormat = ""
	}
	spells := func(s []Spell) *gexfSpells {
		if g.Window <= 0 || len(s) == 0 {
			return nil
		}
		out := &gexfSpells{Spell: make([]gexfSpell, len(s))}
		for i, sp := range s {
			out.Spell[i] = gexfSpell{format(sp.Start), format(sp.End)}
		}
		return out
	}
	for _, n := range g.Nodes {
		doc.Graph.Nodes = append(doc.Graph.Nodes, gexfNode{ID: n.ID, Label: n.ID, Spells: spells(n.Spells)})
	}
	for i, e := range g.Edges {
		doc.Graph.Edges = append(doc.Graph.Edges, gexfEdge{ID: strconv.Itoa(i), Source: e.Source, Target: e.Target, Weight: e.Bytes,
			Values: []gexfValue{{"flows", e.Flows}, {"packets", e.Packets}, {"ip_bytes", e.Bytes}}, Spells: spells(e.Spells)})
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func graphCommand() *cobra.Command {
	var (
		c        common
		o        string
		window   time.Duration
		minBytes uint64
		sensor   string
		source   string
		gexfTime string
	)
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Who talked to whom: hosts and the pairs between them from the stored flows, as GEXF (Gephi), DOT or node-link JSON (D3, Cytoscape)",
		Long: `Builds the communication graph of the stored flows active in the time range: hosts as nodes, pairs
of hosts as undirected edges weighted by IP bytes, with their packets and flows. With --window the
graph is dynamic: every node and edge carries the windows it was active in (GEXF spells, so Gephi's
timeline plays it; per-window flow counts in JSON).

A range of an hour or more is built from the edge rollups the pipeline writes per window (1 min by
default: packets, IP bytes and flows started per pair) instead of from every flow; a shorter one, or
--source flows, from the flows. Standard error says which. From the rollups a flow counts in the
window it started in, and a window is one the pair exchanged packets in.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o != "gexf" && o != "dot" && o != "json" {
				return fmt.Errorf("-o %q: want gexf, dot or json", o)
			}
			if gexfTime != GEXFDateTime && gexfTime != GEXFEpoch {
				return fmt.Errorf("--gexf-time %q: want %s or %s", gexfTime, GEXFDateTime, GEXFEpoch)
			}
			if window < 0 {
				return fmt.Errorf("--window %s: must not be negative", window)
			}
			from, to, err := timeRange(c.since, c.from, c.to, time.Now())
			if err != nil {
				return err
			}
			r, done, err := c.reader()
			if err != nil {
				return err
			}
			defer done()
			r.OnSkip = func(key string, err error) {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: skipped %s: %v\n", key, err)
			}
			g, note, err := LoadGraph(cmd.Context(), r, GraphOptions{From: from, To: to, Window: window, MinBytes: minBytes, Sensor: sensor, Source: source})
			if err != nil {
				return err
			}
			if note != "" {
				note = " (" + note + ")"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "graph: %d hosts and %d pairs, from the %s%s\n", len(g.Nodes), len(g.Edges), g.Source, note)
			switch o {
			case "dot":
				return g.WriteDOT(cmd.OutOrStdout())
			case "json":
				return g.WriteJSON(cmd.OutOrStdout())
			}
			return g.WriteGEXFTime(cmd.OutOrStdout(), gexfTime)
		},
	}
	c.addFlags(cmd)
	cmd.Flags().StringVarP(&o, "output", "o", "gexf", "gexf, dot or json")
	cmd.Flags().DurationVar(&window, "window", 0, "make the graph dynamic, in windows this wide (e.g. 1m); 0: static")
	cmd.Flags().Uint64Var(&minBytes, "min-bytes", 0, "leave out pairs that exchanged fewer IP bytes")
	cmd.Flags().StringVar(&sensor, "sensor", "", "only the flows stored under this sensor name")
	cmd.Flags().StringVar(&gexfTime, "gexf-time", GEXFDateTime, "times of a dynamic GEXF: datetime (RFC 3339, for Gephi) or epoch (seconds, for readers without dateTime such as networkx)")
	cmd.Flags().StringVar(&source, "source", SourceAuto, "auto, flows or rollups (the pipeline's per-window edge rollups)")
	return cmd
}
