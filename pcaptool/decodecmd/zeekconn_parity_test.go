package decodecmd

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/flow"
)

// zeekConnFloor is the share of Zeek's connections (over the baselines that apply) that capfleet's
// flow table reproduces exactly: endpoints, proto, packets and IP bytes each way, conn_state and
// history. It is the figure reached, so that a change that loses a connection fails the test.
const zeekConnFloor = 0.956

// zeekConnFields are the conn.log columns compared, by their Zeek names: the endpoints (which
// also pair the connections) and what the flow table counts and decides.
var zeekConnFields = []string{
	"id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
	"orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes", "conn_state", "history",
}

// zeekBaseline is one row of zeek-oracles/INDEX.tsv with what its btest script and command line
// set: what capfleet needs to run the same trace the same way, or why it cannot.
type zeekBaseline struct {
	name, trace, command string
	redef                bool
	script               string

	filter   string // -f: a tcpdump filter on what Zeek reads
	bare     bool   // -b: only the scripts the test loads
	noChecks bool   // -C: checksums not verified
	loads    []string
	assigns  []string // NAME=VALUE on the command line
	rename   map[string]string
	ports    *flow.Ports // Zeek's likely_server_ports with the scripts the run loaded
	notApply string      // why capfleet cannot reproduce the run, or ""
}

// zeekRow is one connection of a baseline, by (renamed back) Zeek column name.
type zeekRow map[string]string

// zeekConnLog is a baseline conn.log: a full log (#fields) or the columns btest-diff-cut kept.
type zeekConnLog struct {
	fields []string
	rows   []zeekRow
}

func (l *zeekConnLog) has(field string) bool { return slices.Contains(l.fields, field) }

// TestZeekConnParity runs capfleet's flow table over every trace of the Zeek conn.log baselines
// whose settings capfleet can reproduce, and compares each of Zeek's connections with the flow
// capfleet made of the same packets. It prints a table (per baseline: Zeek's connections, exact,
// missed, capfleet flows Zeek did not log), the baselines that do not apply and why, and every
// miss with the fields that differ; it fails below zeekConnFloor.
func TestZeekConnParity(t *testing.T) {
	root := testenv.Pcaps(t)
	oracles := filepath.Join(root, "zeek-oracles")
	baselines := readZeekIndex(t, oracles)
	type result struct {
		name                        string
		conns, exact, misses, extra int
	}
	var results []result
	var skipped, missLines []string
	total, exact := 0, 0
	for _, b := range baselines {
		b.parseSettings(root)
		if b.notApply != "" {
			skipped = append(skipped, fmt.Sprintf("%-62s %s", b.name, b.notApply))
			continue
		}
		want := readZeekConnLog(t, filepath.Join(oracles, b.name, "conn.log"), b.rename)
		got, err := b.run(filepath.Join(root, b.trace))
		if err != nil {
			t.Errorf("%s: %v", b.name, err)
			continue
		}
		misses, extra := compareZeekConns(want, got)
		r := result{name: b.name, conns: len(want.rows), misses: len(misses), extra: len(extra)}
		r.exact = r.conns - r.misses
		results = append(results, r)
		total += r.conns
		exact += r.exact
		for _, m := range misses {
			missLines = append(missLines, b.name+": "+m)
		}
		for _, e := range extra {
			missLines = append(missLines, b.name+": capfleet flow not in Zeek's log: "+e)
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\n%-62s %6s %6s %6s %6s\n", "baseline", "conns", "exact", "missed", "extra")
	for _, r := range results {
		fmt.Fprintf(&out, "%-62s %6d %6d %6d %6d\n", r.name, r.conns, r.exact, r.misses, r.extra)
	}
	share := 0.0
	if total > 0 {
		share = float64(exact) / float64(total)
	}
	fmt.Fprintf(&out, "%-62s %6d %6d %6d\n", "all applicable baselines", total, exact, total-exact)
	fmt.Fprintf(&out, "\nexact: %d of %d Zeek connections (%.4f) over %d baselines\n", exact, total, share, len(results))
	fmt.Fprintf(&out, "\nbaselines that do not apply (%d):\n%s\n", len(skipped), strings.Join(skipped, "\n"))
	fmt.Fprintf(&out, "\nmisses (%d):\n%s\n", len(missLines), strings.Join(missLines, "\n"))
	t.Log(out.String())
	if total == 0 {
		t.Fatal("no baseline applies")
	}
	if share < zeekConnFloor {
		t.Errorf("%.4f of Zeek's connections exact, below the floor of %.4f", share, zeekConnFloor)
	}
}

func readZeekIndex(t *testing.T, dir string) []*zeekBaseline {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "INDEX.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*zeekBaseline
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Split(line, "\t")
		if i == 0 {
			continue // header
		}
		if len(f) != 4 {
			t.Fatalf("INDEX.tsv line %d: %d columns", i+1, len(f))
		}
		b := &zeekBaseline{name: f[0], trace: f[1], command: f[2], redef: f[3] == "redef"}
		if s, err := os.ReadFile(filepath.Join(dir, b.name, "test.zeek")); err == nil {
			b.script = string(s)
		}
		out = append(out, b)
	}
	// The two baselines the README names first are not in INDEX.tsv.
	for _, extra := range []*zeekBaseline{
		{name: "opt.basic", trace: "zeek/wikipedia.pcap", command: "zeek -r $TRACES/wikipedia.pcap"},
		{name: "core.q-in-q", trace: "zeek/q-in-q.pcap", command: "zeek -b -r $TRACES/q-in-q.pcap %INPUT"},
	} {
		if !slices.ContainsFunc(out, func(b *zeekBaseline) bool { return b.name == extra.name }) {
			if s, err := os.ReadFile(filepath.Join(dir, extra.name, "test.zeek")); err == nil {
				extra.script = string(s)
			}
			out = append(out, extra)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// shellWords splits a btest command line as a shell would, quotes removed.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

var (
	zeekLoadRE     = regexp.MustCompile(`(?m)^\s*@load\s+(\S+)`)
	zeekModuleRE   = regexp.MustCompile(`(?m)^\s*module\s+(\w+)\s*;`)
	zeekRedefRE    = regexp.MustCompile(`(?m)^\s*redef\s+([\w:]+)\s*(?::[^=+]*)?(\+?=)`)
	zeekRenameRE   = regexp.MustCompile(`\["([^"]+)"\]\s*=\s*"([^"]+)"`)
	zeekScopeSepRE = regexp.MustCompile(`redef\s+Log::default_scope_sep\s*=\s*"([^"]*)"`)
	zeekPortsRE    = regexp.MustCompile(`(?m)^\s*redef\s+([\w:]+)\s*\+=\s*\{([^}]*)\}`)
	zeekPortRE     = regexp.MustCompile(`(\d+)/(tcp|udp)`)
)

// zeekInputChanges are script calls and redefinitions that change which packets Zeek reads or
// how it decodes them, which capfleet has no setting for: pcap filters installed while it runs,
// packet analyzers, NetControl's drop rules.
var zeekInputChanges = []string{"install_pcap_filter", "register_packet_analyzer", "PacketAnalyzer::", "NetControl::"}

// parseSettings reads the command line and the script, and decides by rule whether capfleet can
// run the trace as Zeek did.
func (b *zeekBaseline) parseSettings(root string) {
	if _, err := os.Stat(filepath.Join(root, b.trace)); err != nil {
		b.notApply = "trace " + b.trace + " not under ../shared/pcaps"
		return
	}
	words := shellWords(b.command)
	for i := 1; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "-b":
			b.bare = true
		case w == "-C":
			b.noChecks = true
		case w == "-r":
			i++
		case w == "-f" && i+1 < len(words):
			b.filter = words[i+1]
			i++
		case w == "%INPUT":
		case strings.HasPrefix(w, ">") || strings.HasPrefix(w, "2>"):
			if w == ">" || w == "2>" {
				i++
			}
		case strings.Contains(w, "="):
			b.assigns = append(b.assigns, w)
		case strings.HasPrefix(w, "-"):
			b.notApply = "command-line option " + w + " that capfleet has no equivalent for"
			return
		default:
			b.loads = append(b.loads, w)
		}
	}
	script := b.script
	if !strings.Contains(b.command, "%INPUT") {
		script = "" // the btest file is not loaded
	}
	for _, m := range zeekLoadRE.FindAllStringSubmatch(script, -1) {
		b.loads = append(b.loads, m[1])
	}
	for _, c := range zeekInputChanges {
		if strings.Contains(script, c) {
			b.notApply = "the script uses " + strings.TrimSuffix(c, "::") + ", which changes what Zeek reads or decodes"
			return
		}
	}
	module := ""
	if m := zeekModuleRE.FindStringSubmatch(script); m != nil {
		module = m[1]
	}
	var redefs []string
	for _, m := range zeekRedefRE.FindAllStringSubmatch(script, -1) {
		name := m[1]
		if name == "record" || name == "enum" {
			continue
		}
		if !strings.Contains(name, "::") && module != "" {
			name = module + "::" + name
		}
		redefs = append(redefs, name)
	}
	for _, a := range b.assigns {
		redefs = append(redefs, strings.SplitN(a, "=", 2)[0])
	}
	for _, name := range redefs {
		if reason := zeekSettingReason(name); reason != "" {
			b.notApply = "redefines " + name + ": " + reason
			return
		}
	}
	b.serverPorts(script)
	b.rename = map[string]string{}
	sep := "."
	if m := zeekScopeSepRE.FindStringSubmatch(script); m != nil {
		sep = m[1]
	}
	names := map[string]string{}
	for _, m := range zeekRenameRE.FindAllStringSubmatch(script, -1) {
		if strings.Contains(script[:strings.Index(script, m[0])], "default_field_name_map") {
			names[m[1]] = m[2]
		}
	}
	for _, f := range append(slices.Clone(zeekConnFields), "ts") {
		logged := strings.ReplaceAll(f, ".", sep)
		if n, ok := names[logged]; ok {
			logged = n
		}
		if logged != f {
			b.rename[logged] = f
		}
	}
}

// zeekSettingReason says why a redefined Zeek identifier changes the connections Zeek logs in a
// way capfleet does not reproduce, or "" when it does not touch them (a log's format, one
// analyzer's limits, a notice) or capfleet reproduces it (likely_server_ports, an analyzer's
// ports). Global identifiers (no module) are the core's connection settings.
func zeekSettingReason(name string) string {
	module, _, found := strings.Cut(name, "::")
	switch {
	case name == "likely_server_ports" || strings.HasSuffix(name, "::ports"):
		return ""
	case !found:
		return "a core setting of Zeek's connection tracking"
	case module == "Tunnel":
		return "tunnel decapsulation"
	case module == "GridFTP":
		return "GridFTP's data channel detection, after which Zeek skips the connection's packets"
	}
	return ""
}

// serverPorts works out Zeek's likely_server_ports for the run: with its default scripts all the
// analyzers', with -b those of the protocol scripts loaded (and the tunnels', always loaded),
// plus what the script adds to likely_server_ports or to a loaded analyzer's ports.
func (b *zeekBaseline) serverPorts(script string) {
	if !b.bare {
		b.ports = flow.ZeekServerPorts()
		return
	}
	p := &flow.Ports{}
	add := func(script string) {
		if ports, ok := flow.ZeekPorts[script]; ok {
			p.Add(decode.ProtoTCP, ports.TCP...)
			p.Add(decode.ProtoUDP, ports.UDP...)
		}
	}
	add("base/packet-protocols")
	for _, l := range b.loads {
		if rest, ok := strings.CutPrefix(l, "base/protocols/"); ok {
			add("base/protocols/" + strings.Split(rest, "/")[0])
		}
	}
	for _, m := range zeekPortsRE.FindAllStringSubmatch(script, -1) {
		name := m[1]
		if module, ok := strings.CutSuffix(name, "::ports"); ok {
			if _, known := flow.ZeekPorts["base/protocols/"+strings.ToLower(module)]; !known {
				continue
			}
		} else if name != "likely_server_ports" {
			continue
		}
		for _, pm := range zeekPortRE.FindAllStringSubmatch(m[2], -1) {
			n, _ := strconv.Atoi(pm[1])
			proto := decode.ProtoTCP
			if pm[2] == "udp" {
				proto = decode.ProtoUDP
			}
			p.Add(proto, uint16(n))
		}
	}
	b.ports = p
}

func readZeekConnLog(t *testing.T, path string, rename map[string]string) *zeekConnLog {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l := &zeekConnLog{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if rest, ok := strings.CutPrefix(line, "#fields\t"); ok {
			l.fields = strings.Split(rest, "\t")
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		vals := strings.Split(line, "\t")
		if l.fields == nil { // btest-diff-cut: a header line of the columns kept
			l.fields = vals
			continue
		}
		if len(vals) != len(l.fields) {
			t.Fatalf("%s: %d values for %d fields: %q", path, len(vals), len(l.fields), line)
		}
		r := zeekRow{}
		for i, n := range l.fields {
			r[n] = vals[i]
		}
		l.rows = append(l.rows, r)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	for i, n := range l.fields {
		if z, ok := rename[n]; ok {
			l.fields[i] = z
			for _, r := range l.rows {
				r[z] = r[n]
				delete(r, n)
			}
		}
	}
	return l
}

// run aggregates the trace as Zeek would have with the baseline's settings.
func (b *zeekBaseline) run(path string) ([]flow.Record, error) {
	src, err := openPackets(path, b.filter, "", false)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	src.dec.VerifyChecksums = !b.noChecks
	var out []flow.Record
	table := flow.New(flow.Config{MaxFlows: 1 << 20, ActiveTimeout: 1 << 62, ServerPorts: b.ports, OnEnd: func(f *flow.Flow, why flow.EndReason) {
		out = append(out, f.Record(why))
	}})
	readErr := src.each(func(_ int, p *decode.Packet) { table.Add(p) })
	table.Flush()
	return out, readErr
}

// zeekFields is a capfleet flow as the conn.log columns compared.
func zeekFields(r *flow.Record) zeekRow {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	h := r.History
	if h == "" {
		h = "-"
	}
	return zeekRow{
		"ts":        fmt.Sprintf("%d.%06d", r.TS.UnixMicro()/1e6, r.TS.UnixMicro()%1e6),
		"id.orig_h": r.OrigH, "id.orig_p": itoa(r.OrigP), "id.resp_h": r.RespH, "id.resp_p": itoa(r.RespP),
		"proto":     r.Proto,
		"orig_pkts": u(r.OrigPkts), "resp_pkts": u(r.RespPkts), "orig_ip_bytes": u(r.OrigIPBytes), "resp_ip_bytes": u(r.RespIPBytes),
		"conn_state": r.ConnState, "history": h,
	}
}

// tupleKey is a connection's endpoints in either direction, which pairs a flow with Zeek's even
// when capfleet chose the other side as the originator.
func tupleKey(r zeekRow) string {
	a, b := r["id.orig_h"]+" "+r["id.orig_p"], r["id.resp_h"]+" "+r["id.resp_p"]
	if a > b {
		a, b = b, a
	}
	return a + " " + b + " " + r["proto"]
}

func describeRow(r zeekRow) string {
	if _, ok := r["id.orig_h"]; !ok {
		var parts []string
		for _, f := range zeekConnFields {
			if v, ok := r[f]; ok {
				parts = append(parts, f+"="+v)
			}
		}
		return strings.Join(parts, " ")
	}
	return fmt.Sprintf("%s %s:%s -> %s:%s", r["proto"], r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"])
}

// compareZeekConns pairs Zeek's connections with capfleet's flows and returns a line per Zeek
// connection not reproduced exactly (what differs) and per capfleet flow left unpaired.
func compareZeekConns(want *zeekConnLog, gotRecs []flow.Record) (misses, extra []string) {
	var compared []string
	for _, f := range zeekConnFields {
		if want.has(f) {
			compared = append(compared, f)
		}
	}
	got := make([]zeekRow, len(gotRecs))
	for i := range gotRecs {
		got[i] = zeekFields(&gotRecs[i])
	}
	used := make([]bool, len(got))
	diff := func(w, g zeekRow) []string {
		var d []string
		for _, f := range compared {
			if w[f] != g[f] {
				d = append(d, fmt.Sprintf("%s: capfleet %s, Zeek %s", f, g[f], w[f]))
			}
		}
		return d
	}
	if !want.has("id.orig_h") {
		// A cut log without endpoints: pair each connection with an unused flow equal in every
		// column kept, in log order.
		for _, w := range want.rows {
			found := false
			for i, g := range got {
				if !used[i] && len(diff(w, g)) == 0 {
					used[i], found = true, true
					break
				}
			}
			if !found {
				cause := ""
				for i, g := range got {
					if !used[i] {
						if c := missCause(w, g); c != "" {
							cause = c
						}
					}
				}
				misses = append(misses, "no capfleet flow with "+describeRow(w)+cause)
			}
		}
	} else {
		// Pair by endpoints in either direction; several connections of one 5-tuple (one after
		// another's close) pair by start time, then in order.
		byKey := map[string][]int{}
		for i, g := range got {
			byKey[tupleKey(g)] = append(byKey[tupleKey(g)], i)
		}
		hasTS := want.has("ts")
		for _, w := range want.rows {
			cands := byKey[tupleKey(w)]
			pick := -1
			if hasTS && !strings.HasPrefix(w["ts"], "X") {
				for _, i := range cands {
					if !used[i] && got[i]["ts"] == w["ts"] {
						pick = i
						break
					}
				}
			}
			if pick < 0 {
				for _, i := range cands {
					if !used[i] {
						pick = i
						break
					}
				}
			}
			if pick < 0 {
				misses = append(misses, describeRow(w)+": no capfleet flow of these endpoints [cause: capfleet's decoder did not reach these packets, or made them another flow]")
				continue
			}
			used[pick] = true
			if d := diff(w, got[pick]); len(d) > 0 {
				misses = append(misses, describeRow(w)+" (ts "+w["ts"]+"): "+strings.Join(d, "; ")+missCause(w, got[pick]))
			}
		}
	}
	for i, g := range got {
		if !used[i] {
			extra = append(extra, describeRow(g)+" ts "+g["ts"]+" "+g["conn_state"]+" "+g["history"])
		}
	}
	return misses, extra
}

// missCause names, where a rule tells it, why capfleet's flow differs from Zeek's connection: a
// letter of Zeek's history that its protocol analyzers or its TCP reassembly set, which capfleet
// does not have.
func missCause(w, g zeekRow) string {
	zh, ch := w["history"], g["history"]
	if zh == "" || zh == ch {
		return ""
	}
	strip := func(h, letters string) string {
		return strings.Map(func(r rune) rune {
			if strings.ContainsRune(letters, r) {
				return -1
			}
			return r
		}, h)
	}
	switch {
	case strip(zh, "Xx") == ch:
		return " [cause: Zeek's 'X' (analysis cut at a limit of one of its protocol analyzers, which capfleet does not run)]"
	case strip(zh, "Gg") == ch:
		return " [cause: Zeek's 'g' (a content gap its TCP reassembly found; capfleet does not reassemble)]"
	case strings.Contains(zh, "^") && !strings.Contains(ch, "^") && w["proto"] == "udp":
		return " [cause: flipped by a Zeek protocol analyzer that read the payload]"
	}
	return ""
}
