package query

import (
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

// query graph of the flows of three captures: one edge per pair of hosts with the packets and IP bytes
// tshark counts between them, one node per host, in node-link JSON, DOT and dynamic GEXF alike.
func TestQueryGraphAgreesWithTshark(t *testing.T) {
	files, flags := storedCaptureFlows(t, time.Date(2024, 5, 3, 10, 0, 0, 0, time.UTC))
	pairs := tsharkTalkers(t, files, ByPair)
	hosts := tsharkTalkers(t, files, ByHost)

	out, err := run(append([]string{"graph", "-o", "json", "--window", "1m"}, flags...)...)
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Nodes []struct{ ID string }
		Links []struct {
			Source, Target string
			Flows, Packets uint64
			Bytes          uint64 `json:"ip_bytes"`
			Windows        []struct{ Flows uint64 }
		}
	}
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(g.Links) != len(pairs) || len(g.Nodes) != len(hosts) {
		t.Errorf("%d links and %d nodes, tshark has %d pairs and %d hosts", len(g.Links), len(g.Nodes), len(pairs), len(hosts))
	}
	var totalBytes uint64
	for _, l := range g.Links {
		w, ok := pairs[l.Source+" "+l.Target]
		if !ok || l.Packets != w.PacketsOut+w.PacketsIn || l.Bytes != w.BytesOut+w.BytesIn || len(l.Windows) == 0 {
			t.Errorf("link %+v, tshark %+v", l, w)
		}
		totalBytes += l.Bytes
	}
	for _, n := range g.Nodes {
		if _, ok := hosts[n.ID+" "]; !ok {
			t.Errorf("node %s is no host tshark saw", n.ID)
		}
	}

	gexf, err := run(append([]string{"graph", "-o", "gexf", "--window", "1m"}, flags...)...)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName xml.Name
		Version string `xml:"version,attr"`
		Graph   struct {
			Mode  string `xml:"mode,attr"`
			Nodes []struct {
				ID     string `xml:"id,attr"`
				Spells []struct {
					Start string `xml:"start,attr"`
					End   string `xml:"end,attr"`
				} `xml:"spells>spell"`
			} `xml:"nodes>node"`
			Edges []struct {
				Weight uint64 `xml:"weight,attr"`
				Spells []struct {
					Start string `xml:"start,attr"`
					End   string `xml:"end,attr"`
				} `xml:"spells>spell"`
			} `xml:"edges>edge"`
		} `xml:"graph"`
	}
	if err := xml.Unmarshal([]byte(gexf), &doc); err != nil {
		t.Fatalf("gexf: %v", err)
	}
	if doc.XMLName.Space != "http://gexf.net/1.3" || doc.Version != "1.3" || doc.Graph.Mode != "dynamic" ||
		len(doc.Graph.Nodes) != len(hosts) || len(doc.Graph.Edges) != len(pairs) {
		t.Fatalf("gexf %s %s mode %s with %d nodes and %d edges", doc.XMLName.Space, doc.Version, doc.Graph.Mode, len(doc.Graph.Nodes), len(doc.Graph.Edges))
	}
	var weights uint64
	for _, e := range doc.Graph.Edges {
		weights += e.Weight
		for _, s := range e.Spells {
			a, err1 := time.Parse(time.RFC3339, s.Start)
			b, err2 := time.Parse(time.RFC3339, s.End)
			if err1 != nil || err2 != nil || !a.Before(b) || b.Sub(a)%time.Minute != 0 {
				t.Errorf("spell %+v", s)
			}
		}
		if len(e.Spells) == 0 {
			t.Errorf("an edge without a spell in a dynamic graph")
		}
	}
	if weights != totalBytes {
		t.Errorf("gexf edge weights sum to %d, the links' IP bytes to %d", weights, totalBytes)
	}

	dot, err := run(append([]string{"graph", "-o", "dot", "--min-bytes", "1000"}, flags...)...)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, w := range pairs {
		if w.BytesOut+w.BytesIn >= 1000 {
			want++
		}
	}
	if got := strings.Count(dot, " -- "); got != want || want == 0 || want == len(pairs) {
		t.Errorf("--min-bytes 1000: %d edges in DOT, tshark has %d pairs with 1000 IP bytes or more (of %d)", got, want, len(pairs))
	}
}
