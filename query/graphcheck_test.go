package query

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/processor/store"
)

// validateGEXF checks a GEXF document against the GEXF 1.3 RELAX NG grammar of testdata/gexf-1.3 with
// xmllint (see its README for why the grammar and not the XSD).
func validateGEXF(t *testing.T, doc string) {
	t.Helper()
	if _, err := exec.LookPath("xmllint"); err != nil {
		testenv.Missing(t, "xmllint (Debian libxml2-utils) is needed to validate GEXF: run hack/deps.sh")
	}
	f := filepath.Join(t.TempDir(), "graph.gexf")
	if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	rng := filepath.Join(testenv.Root(t), "testdata", "gexf-1.3", "gexf.rng")
	if out, err := exec.Command("xmllint", "--noout", "--relaxng", rng, f).CombinedOutput(); err != nil {
		t.Fatalf("xmllint --relaxng gexf.rng: %v\n%s", err, out)
	}
}

// networkxPython is the Python of the venv hack/networkx.sh makes (and hack/deps.sh runs).
func networkxPython(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("bash", filepath.Join(testenv.Root(t), "hack", "networkx.sh")).Output()
	py := strings.TrimSpace(string(out))
	if err != nil || py == "" {
		testenv.Missing(t, "networkx from PyPI is needed to read the graphs: run hack/deps.sh (%v)", err)
	}
	return py
}

// nxReport is what networkx makes of a GEXF file and a node-link JSON file.
type nxReport struct {
	GEXF, JSON struct {
		Directed bool
		Nodes    []string
		Edges    []struct {
			U, V                    string
			Weight                  float64
			Flows, Packets, IPBytes int64
			Spells                  [][2]float64
		}
	}
}

// networkxRead has networkx read_gexf the GEXF and node_link_graph the JSON, and reports both.
func networkxRead(t *testing.T, gexf, nodeLink string) nxReport {
	t.Helper()
	py := networkxPython(t)
	dir := t.TempDir()
	gf, jf := filepath.Join(dir, "g.gexf"), filepath.Join(dir, "g.json")
	if err := os.WriteFile(gf, []byte(gexf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jf, []byte(nodeLink), 0o644); err != nil {
		t.Fatal(err)
	}
	const script = `
import json, sys
import networkx as nx

def report(g):
    edges = []
    for u, v, d in g.edges(data=True):
        edges.append({"U": str(u), "V": str(v), "Weight": float(d.get("weight", 0)),
                      "Flows": int(d.get("flows", -1)), "Packets": int(d.get("packets", -1)),
                      "IPBytes": int(d.get("ip_bytes", -1)),
                      "Spells": [[float(s[0]), float(s[1])] for s in d.get("spells", [])]})
    return {"Directed": g.is_directed(), "Nodes": sorted(str(n) for n in g.nodes()), "Edges": edges}

with open(sys.argv[2]) as f:
    link = nx.node_link_graph(json.load(f), edges="links")
print(json.dumps({"GEXF": report(nx.read_gexf(sys.argv[1])), "JSON": report(link)}))
`
	out, err := exec.Command(py, "-c", script, gf, jf).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("networkx: %v\n%s", err, stderr)
	}
	var r nxReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("networkx report: %v\n%s", err, out)
	}
	return r
}

// checkWithOutsideTools validates the GEXF of g and has networkx read it and the node-link JSON of g:
// both must give g's hosts, pairs, weights (IP bytes) and counts; a dynamic GEXF its spells.
func checkWithOutsideTools(t *testing.T, g Graph) {
	t.Helper()
	var gexf, epoch, js strings.Builder
	if err := g.WriteGEXF(&gexf); err != nil {
		t.Fatal(err)
	}
	if err := g.WriteGEXFTime(&epoch, GEXFEpoch); err != nil {
		t.Fatal(err)
	}
	if err := g.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	validateGEXF(t, gexf.String())
	validateGEXF(t, epoch.String())
	// networkx reads no dateTime spells (networkx/networkx#3246): it reads the epoch form.
	r := networkxRead(t, epoch.String(), js.String())
	for _, view := range []struct {
		name string
		r    *struct {
			Directed bool
			Nodes    []string
			Edges    []struct {
				U, V                    string
				Weight                  float64
				Flows, Packets, IPBytes int64
				Spells                  [][2]float64
			}
		}
	}{{"read_gexf", &r.GEXF}, {"node_link_graph", &r.JSON}} {
		if view.r.Directed || len(view.r.Nodes) != len(g.Nodes) || len(view.r.Edges) != len(g.Edges) {
			t.Errorf("networkx %s: directed %v, %d nodes and %d edges; the graph has %d and %d", view.name, view.r.Directed,
				len(view.r.Nodes), len(view.r.Edges), len(g.Nodes), len(g.Edges))
			continue
		}
		for i, n := range g.Nodes {
			if view.r.Nodes[i] != n.ID {
				t.Errorf("networkx %s: node %q, want %q", view.name, view.r.Nodes[i], n.ID)
			}
		}
		want := map[[2]string]GraphEdge{}
		for _, e := range g.Edges {
			want[[2]string{e.Source, e.Target}] = e
		}
		for _, e := range view.r.Edges {
			w, ok := want[[2]string{e.U, e.V}]
			if !ok {
				w, ok = want[[2]string{e.V, e.U}]
			}
			if !ok || e.Flows != int64(w.Flows) || e.Packets != int64(w.Packets) || e.IPBytes != int64(w.Bytes) ||
				(view.name == "read_gexf" && e.Weight != float64(w.Bytes)) {
				t.Errorf("networkx %s: edge %+v, the graph's %+v", view.name, e, w)
				continue
			}
			if view.name == "read_gexf" && g.Window > 0 {
				ok := len(e.Spells) == len(w.Spells)
				for i := 0; ok && i < len(e.Spells); i++ {
					ok = e.Spells[i][0] == float64(w.Spells[i].Start.Unix()) && e.Spells[i][1] == float64(w.Spells[i].End.Unix())
				}
				if !ok {
					t.Errorf("networkx read_gexf: edge %s-%s has spells %v, the graph %v", e.U, e.V, e.Spells, w.Spells)
				}
			}
		}
	}
}

// The GEXF capfleet writes, static and dynamic, with IPv4 and IPv6 hosts, passes the GEXF 1.3 grammar
// and reads in networkx with its hosts, pairs, weights and counts, as does the node-link JSON; a GEXF
// the grammar refuses (a wrong version) fails, so the check is not vacuous.
func TestGraphOutputsPassXmllintAndNetworkx(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 30, 0, time.UTC)
	flows := []store.Flow{
		{OrigAddr: netip.MustParseAddr("10.0.0.1"), RespAddr: netip.MustParseAddr("10.0.0.2"), Start: t0, End: t0.Add(3 * time.Minute), OrigPkts: 3, RespPkts: 2, OrigIPBytes: 300, RespIPBytes: 120},
		{OrigAddr: netip.MustParseAddr("10.0.0.2"), RespAddr: netip.MustParseAddr("10.0.0.1"), Start: t0.Add(10 * time.Minute), End: t0.Add(10 * time.Minute), OrigPkts: 1, OrigIPBytes: 60},
		{OrigAddr: netip.MustParseAddr("2001:db8::1"), RespAddr: netip.MustParseAddr("2001:db8::2"), Start: t0, End: t0.Add(time.Second), OrigPkts: 1, RespPkts: 1, OrigIPBytes: 80, RespIPBytes: 80},
	}
	for _, window := range []time.Duration{0, time.Minute} {
		g := BuildGraph(flows, window, 0)
		if len(g.Nodes) != 4 || len(g.Edges) != 2 {
			t.Fatalf("window %s: %d nodes, %d edges", window, len(g.Nodes), len(g.Edges))
		}
		checkWithOutsideTools(t, g)
	}
	var gexf strings.Builder
	if err := BuildGraph(flows, time.Minute, 0).WriteGEXF(&gexf); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.gexf")
	if err := os.WriteFile(bad, []byte(strings.Replace(gexf.String(), `version="1.3"`, `version="1.2"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	rng := filepath.Join(testenv.Root(t), "testdata", "gexf-1.3", "gexf.rng")
	if out, err := exec.Command("xmllint", "--noout", "--relaxng", rng, bad).CombinedOutput(); err == nil {
		t.Fatalf("xmllint accepted a GEXF of version 1.2:\n%s", out)
	}
}

// A keyspace of a schema before version 5 has no traffic table: query traffic says so and how to fix it.
func TestTrafficOfAnOldKeyspaceSaysWhy(t *testing.T) {
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg) // no tables at all
	_, err := run("traffic", "--sensor", "s", "--from", "2024-01-01T00:00:00Z", "--to", "2024-01-01T00:10:00Z", "--keyspace", ks,
		"--cassandra-hosts", strings.Join(ccfg.Hosts, ","), "--cassandra-port", strconv.Itoa(ccfg.Port), "--cassandra-secret-dir", ccfg.SecretDir)
	if err == nil || !strings.Contains(err.Error(), "predates schema version 5") {
		t.Fatalf("query traffic on an empty keyspace: %v", err)
	}
}
