package flow

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"capfleet.dev/capfleet/processor/decode"
)

// Features selects the optional feature sets a Table computes on its flows.
type Features uint8

const (
	// FeaturesCIC are CICFlowMeter's columns as the CIC-IDS2017 CSVs name them (Flow.CIC).
	FeaturesCIC Features = 1 << iota
)

// FeatureNames are the names ParseFeatures accepts, as `--features` and spec.flows.features spell them.
var FeatureNames = []string{"cic"}

// ParseFeatures reads feature set names ("cic"); none is no feature set.
func ParseFeatures(names []string) (Features, error) {
	var f Features
	for _, n := range names {
		switch strings.ToLower(strings.TrimSpace(n)) {
		case "cic":
			f |= FeaturesCIC
		case "", "none":
		default:
			return 0, fmt.Errorf("unknown flow feature set %q: want one of %s", n, strings.Join(FeatureNames, ", "))
		}
	}
	return f, nil
}

// String names the feature sets as ParseFeatures reads them ("cic"), for flags.
func (f *Features) String() string {
	if *f&FeaturesCIC != 0 {
		return "cic"
	}
	return ""
}

// Set adds the feature sets of a comma-separated list, so that Features is a command-line flag.
func (f *Features) Set(s string) error {
	more, err := ParseFeatures(strings.Split(s, ","))
	*f |= more
	return err
}

// Type is the flag's value type, as pflag shows it.
func (f *Features) Type() string { return "features" }

// CICFlowMeter's constants (its Java BasicFlow and FlowGenerator): a gap of more than a second
// ends a bulk and starts a subflow, a gap of more than the activity timeout ends an active period,
// and four payload packets in a row make a bulk.
const (
	cicClump          = int64(time.Second)
	cicActivityTimout = int64(5 * time.Second)
	cicBulkPackets    = 4
)

// CICHeader is the header line of `--features cic -o csv`: the columns of CIC-IDS2017's
// GeneratedLabelledFlows CSVs byte for byte (their odd spaces included, which notebooks strip or
// index by), without the Label the data set's authors added.
const CICHeader = "Flow ID, Source IP, Source Port, Destination IP, Destination Port, Protocol, Timestamp, " +
	"Flow Duration, Total Fwd Packets, Total Backward Packets,Total Length of Fwd Packets, Total Length of Bwd Packets, " +
	"Fwd Packet Length Max, Fwd Packet Length Min, Fwd Packet Length Mean, Fwd Packet Length Std,Bwd Packet Length Max, " +
	"Bwd Packet Length Min, Bwd Packet Length Mean, Bwd Packet Length Std,Flow Bytes/s, Flow Packets/s, Flow IAT Mean, " +
	"Flow IAT Std, Flow IAT Max, Flow IAT Min,Fwd IAT Total, Fwd IAT Mean, Fwd IAT Std, Fwd IAT Max, Fwd IAT Min," +
	"Bwd IAT Total, Bwd IAT Mean, Bwd IAT Std, Bwd IAT Max, Bwd IAT Min,Fwd PSH Flags, Bwd PSH Flags, Fwd URG Flags, " +
	"Bwd URG Flags, Fwd Header Length, Bwd Header Length,Fwd Packets/s, Bwd Packets/s, Min Packet Length, " +
	"Max Packet Length, Packet Length Mean, Packet Length Std, Packet Length Variance,FIN Flag Count, SYN Flag Count, " +
	"RST Flag Count, PSH Flag Count, ACK Flag Count, URG Flag Count, CWE Flag Count, ECE Flag Count, Down/Up Ratio, " +
	"Average Packet Size, Avg Fwd Segment Size, Avg Bwd Segment Size, Fwd Header Length,Fwd Avg Bytes/Bulk, " +
	"Fwd Avg Packets/Bulk, Fwd Avg Bulk Rate, Bwd Avg Bytes/Bulk, Bwd Avg Packets/Bulk,Bwd Avg Bulk Rate," +
	"Subflow Fwd Packets, Subflow Fwd Bytes, Subflow Bwd Packets, Subflow Bwd Bytes,Init_Win_bytes_forward, " +
	"Init_Win_bytes_backward, act_data_pkt_fwd, min_seg_size_forward,Active Mean, Active Std, Active Max, Active Min," +
	"Idle Mean, Idle Std, Idle Max, Idle Min"

// cicIdentity is how many of CICHeader's columns identify the flow rather than measure it.
const cicIdentity = 7

// NumCICColumns is the number of measured columns, CIC.V's length.
const NumCICColumns = 77

// CICColumns are the measured columns' names, trimmed; the second "Fwd Header Length" (a
// duplicate in CICFlowMeter's output) is "Fwd Header Length.1", as pandas names it on reading,
// so that JSON keys and table entries are unique.
var CICColumns = cicColumns()

func cicColumns() []string {
	all := strings.Split(CICHeader, ",")
	cols := make([]string, 0, len(all)-cicIdentity)
	seen := map[string]bool{}
	for _, c := range all[cicIdentity:] {
		c = strings.TrimSpace(c)
		if seen[c] {
			c += ".1"
		}
		seen[c] = true
		cols = append(cols, c)
	}
	return cols
}

// CIC is a flow's CICFlowMeter row. Forward is the direction of the flow's first packet, as in
// CICFlowMeter, whatever Zeek's rules made the originator. Times are in microseconds, lengths
// are TCP and UDP payloads (IP payloads for other protocols) and header lengths TCP and UDP
// headers, as CICFlowMeter measures them.
//
// The columns follow what CICFlowMeter's Java BasicFlow means where its code slips: the first
// packet counts once in the packet lengths and in act_data_pkt_fwd; bulks are per direction
// (its source comparison by reference made every packet backward); a subflow starts after a gap
// of more than a second (its expression divides the wrong operand); Init_Win_bytes_backward is the
// first backward window, as the forward one is the first forward window; the active period still
// open at the end counts, and no idle time is invented up to a flow timeout.
type CIC struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Protocol         uint8
	Start            time.Time
	V                [NumCICColumns]float64 // by CICColumns
}

// FlowID is CICFlowMeter's "Flow ID": the forward 5-tuple joined by dashes.
func (c *CIC) FlowID() string {
	return c.Src.String() + "-" + c.Dst.String() + "-" + strconv.Itoa(int(c.SrcPort)) + "-" +
		strconv.Itoa(int(c.DstPort)) + "-" + strconv.Itoa(int(c.Protocol))
}

// Timestamp is the flow's start as CICFlowMeter writes it (dd/MM/yyyy hh:mm:ss a), in UTC.
func (c *CIC) Timestamp() string { return c.Start.UTC().Format("02/01/2006 03:04:05 PM") }

// AppendCSV appends the row under CICHeader.
func (c *CIC) AppendCSV(dst []byte) []byte {
	dst = append(dst, c.FlowID()...)
	dst = append(dst, ',')
	dst = append(dst, c.Src.String()...)
	dst = append(dst, ',')
	dst = strconv.AppendUint(dst, uint64(c.SrcPort), 10)
	dst = append(dst, ',')
	dst = append(dst, c.Dst.String()...)
	dst = append(dst, ',')
	dst = strconv.AppendUint(dst, uint64(c.DstPort), 10)
	dst = append(dst, ',')
	dst = strconv.AppendUint(dst, uint64(c.Protocol), 10)
	dst = append(dst, ',')
	dst = append(dst, c.Timestamp()...)
	for _, v := range c.V {
		dst = append(dst, ',')
		dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
	}
	return append(dst, '\n')
}

// MarshalJSON writes the row as an object keyed by the trimmed column names.
func (c *CIC) MarshalJSON() ([]byte, error) {
	b := []byte(`{"Flow ID":`)
	b = strconv.AppendQuote(b, c.FlowID())
	b = append(b, `,"Source IP":`...)
	b = strconv.AppendQuote(b, c.Src.String())
	b = append(b, `,"Source Port":`...)
	b = strconv.AppendUint(b, uint64(c.SrcPort), 10)
	b = append(b, `,"Destination IP":`...)
	b = strconv.AppendQuote(b, c.Dst.String())
	b = append(b, `,"Destination Port":`...)
	b = strconv.AppendUint(b, uint64(c.DstPort), 10)
	b = append(b, `,"Protocol":`...)
	b = strconv.AppendUint(b, uint64(c.Protocol), 10)
	b = append(b, `,"Timestamp":`...)
	b = strconv.AppendQuote(b, c.Timestamp())
	for i, v := range c.V {
		b = append(b, ',')
		b = strconv.AppendQuote(b, CICColumns[i])
		b = append(b, ':')
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	return append(b, '}'), nil
}

// welford accumulates count, sum, mean, variance (Welford's one-pass update), minimum and maximum.
type welford struct {
	n             uint64
	sum, mean, m2 float64
	min, max      float64
}

func (w *welford) add(x float64) {
	w.n++
	w.sum += x
	if w.n == 1 {
		w.min, w.max = x, x
	} else {
		w.min, w.max = min(w.min, x), max(w.max, x)
	}
	d := x - w.mean
	w.mean += d / float64(w.n)
	w.m2 += d * (x - w.mean)
}

// variance is the sample variance (n-1), as the Apache Commons SummaryStatistics CICFlowMeter
// uses; 0 for fewer than two values.
func (w *welford) variance() float64 {
	if w.n < 2 {
		return 0
	}
	return w.m2 / float64(w.n-1)
}

func (w *welford) std() float64 { return math.Sqrt(w.variance()) }

// merged is the union of two samples (Chan et al.'s pairwise update): the flow's packet lengths
// are both directions' without a third accumulator.
func merged(a, b welford) welford {
	switch {
	case a.n == 0:
		return b
	case b.n == 0:
		return a
	}
	n := a.n + b.n
	d := b.mean - a.mean
	return welford{
		n: n, sum: a.sum + b.sum,
		mean: a.mean + d*float64(b.n)/float64(n),
		m2:   a.m2 + b.m2 + d*d*float64(a.n)*float64(b.n)/float64(n),
		min:  min(a.min, b.min), max: max(a.max, b.max),
	}
}

// bulk follows one direction's bulks: runs of at least cicBulkPackets payload packets, each
// within cicClump of the one before, with no payload from the other side in between.
type bulk struct {
	start int64
	last  int64 // math.MinInt64 before the direction's first payload
	// runPkts and runBytes are the run under way (a bulk from its cicBulkPackets-th packet on); no
	// run when runPkts is 0.
	runPkts, runBytes  uint64
	bulks, pkts, bytes uint64
	dur                int64
}

// cicDir is one direction's share of a cicFlow.
type cicDir struct {
	len       welford // payload lengths
	iat       welford // microseconds between this direction's packets
	last      int64
	header    uint64
	minHeader uint64
	actData   uint64
	initWin   int64 // the first packet's TCP window, -1 before one
	psh, urg  uint64
	bulk      bulk
}

// cicFlow accumulates a flow's CICFlowMeter features in one pass, keeping no packet.
type cicFlow struct {
	fwd                    uint64 // the lookup side of the first packet: CICFlowMeter's forward
	start, last            int64
	iat                    welford
	active, idle           welford
	startActive, endActive int64
	subflows               uint64
	flags                  [8]uint64 // FIN SYN RST PSH ACK URG CWR ECE, packets with each
	dir                    [2]cicDir // forward, backward
}

func (c *cicFlow) reset(fwdSide int, now int64) {
	*c = cicFlow{fwd: uint64(fwdSide), start: now, last: now, startActive: now, endActive: now, subflows: 1}
	for i := range c.dir {
		c.dir[i].initWin, c.dir[i].bulk.last = -1, math.MinInt64
	}
}

// cicPacket is what a packet tells the features.
type cicPacket struct {
	payload, header uint64
	flags           uint16
	window          uint16
	tcp             bool
}

func cicPacketOf(h *decode.IPHeader) cicPacket {
	var p cicPacket
	switch h.Proto {
	case decode.ProtoTCP:
		p.tcp, p.flags, p.window = true, h.L4.Flags, h.L4.Window
		pl := max(h.L4.PayloadLen, 0)
		p.payload = uint64(pl)
		p.header = uint64(max(h.Reported-h.HeaderLen-pl, 0))
	case decode.ProtoUDP:
		p.payload, p.header = uint64(max(int(h.L4.UDPLen)-8, 0)), 8
	default:
		p.payload = uint64(max(h.TotalLen-h.HeaderLen, 0))
	}
	return p
}

// add accounts a packet from the lookup side side at now (Unix nanoseconds).
func (c *cicFlow) add(side int, now int64, p cicPacket) {
	d := 0
	if uint64(side) != c.fwd {
		d = 1
	}
	if c.dir[0].len.n+c.dir[1].len.n > 0 {
		gap := max(now-c.last, 0)
		c.iat.add(micros(gap))
		if gap > cicClump {
			c.subflows++
		}
		c.activity(now)
		c.last = max(c.last, now)
	}
	dir := &c.dir[d]
	if dir.len.n > 0 {
		dir.iat.add(micros(max(now-dir.last, 0)))
	} else {
		dir.minHeader = p.header
		if p.tcp {
			dir.initWin = int64(p.window)
		}
	}
	dir.last = now
	dir.len.add(float64(p.payload))
	dir.header += p.header
	dir.minHeader = min(dir.minHeader, p.header)
	if p.payload > 0 {
		dir.actData++
	}
	c.countFlags(dir, p.flags)
	c.addBulk(d, now, p.payload)
}

func micros(ns int64) float64 { return float64(ns) / 1e3 }

// activity ends the active period and counts an idle one when the flow was quiet for longer
// than the activity timeout.
func (c *cicFlow) activity(now int64) {
	if now-c.endActive > cicActivityTimout {
		if a := c.endActive - c.startActive; a > 0 {
			c.active.add(micros(a))
		}
		c.idle.add(micros(now - c.endActive))
		c.startActive = now
	}
	c.endActive = now
}

func (c *cicFlow) countFlags(dir *cicDir, f uint16) {
	for i, bit := range [8]uint16{decode.TCPFin, decode.TCPSyn, decode.TCPRst, decode.TCPPsh, decode.TCPAck, decode.TCPUrg, decode.TCPCwr, decode.TCPEce} {
		if f&bit != 0 {
			c.flags[i]++
		}
	}
	if f&decode.TCPPsh != 0 {
		dir.psh++
	}
	if f&decode.TCPUrg != 0 {
		dir.urg++
	}
}

func (c *cicFlow) addBulk(d int, now int64, size uint64) {
	b, other := &c.dir[d].bulk, &c.dir[1-d].bulk
	if b.runPkts > 0 && other.last > b.start {
		b.runPkts = 0 // the other side sent payload since this run began
	}
	if size == 0 {
		return
	}
	if b.runPkts == 0 || now-b.last > cicClump {
		b.start, b.last, b.runPkts, b.runBytes = now, now, 1, size
		return
	}
	b.runPkts++
	b.runBytes += size
	switch {
	case b.runPkts == cicBulkPackets:
		b.bulks++
		b.pkts += b.runPkts
		b.bytes += b.runBytes
		b.dur += now - b.start
	case b.runPkts > cicBulkPackets:
		b.pkts++
		b.bytes += size
		b.dur += now - b.last
	}
	b.last = now
}

// row fills out with the flow's columns; key is the flow's lookup key.
func (c *cicFlow) row(l *lookupKey, out *CIC) {
	src, dst, sp, dp := addr(l.a, l.v4), addr(l.b, l.v4), l.aPort, l.bPort
	if c.fwd == 1 {
		src, dst, sp, dp = dst, src, dp, sp
	}
	*out = CIC{Src: src, Dst: dst, SrcPort: sp, DstPort: dp, Protocol: l.proto, Start: time.Unix(0, c.start)}
	active := c.active
	if a := c.endActive - c.startActive; a > 0 {
		active.add(micros(a)) // the period still open at the end
	}
	f, b := &c.dir[0], &c.dir[1]
	all := merged(f.len, b.len)
	pkts := float64(all.n)
	durUS := micros(c.last - c.start)
	perSec := func(x float64) float64 {
		if durUS <= 0 {
			return 0
		}
		return x / (durUS / 1e6)
	}
	div := func(x, y float64) float64 {
		if y == 0 {
			return 0
		}
		return x / y
	}
	v := out.V[:0]
	put := func(xs ...float64) { v = append(v, xs...) }
	put(durUS, float64(f.len.n), float64(b.len.n), f.len.sum, b.len.sum)
	put(f.len.max, f.len.min, f.len.mean, f.len.std())
	put(b.len.max, b.len.min, b.len.mean, b.len.std())
	put(perSec(all.sum), perSec(pkts))
	put(c.iat.mean, c.iat.std(), c.iat.max, c.iat.min)
	put(f.iat.sum, f.iat.mean, f.iat.std(), f.iat.max, f.iat.min)
	put(b.iat.sum, b.iat.mean, b.iat.std(), b.iat.max, b.iat.min)
	put(float64(f.psh), float64(b.psh), float64(f.urg), float64(b.urg))
	put(float64(f.header), float64(b.header))
	put(perSec(float64(f.len.n)), perSec(float64(b.len.n)))
	put(all.min, all.max, all.mean, all.std(), all.variance())
	for _, n := range c.flags {
		put(float64(n))
	}
	// CICFlowMeter divides the packet counts as integers.
	downUp := 0.0
	if f.len.n > 0 {
		downUp = float64(b.len.n / f.len.n)
	}
	put(downUp, div(all.sum, pkts), div(f.len.sum, float64(f.len.n)), div(b.len.sum, float64(b.len.n)))
	put(float64(f.header))
	for _, d := range []*cicDir{f, b} {
		k := &d.bulk
		put(div(float64(k.bytes), float64(k.bulks)), div(float64(k.pkts), float64(k.bulks)), div(float64(k.bytes), float64(k.dur)/1e9))
	}
	sf := float64(c.subflows)
	put(math.Floor(float64(f.len.n)/sf), math.Floor(f.len.sum/sf), math.Floor(float64(b.len.n)/sf), math.Floor(b.len.sum/sf))
	put(float64(f.initWin), float64(b.initWin), float64(f.actData), float64(f.minHeader))
	put(active.mean, active.std(), active.max, active.min)
	put(c.idle.mean, c.idle.std(), c.idle.max, c.idle.min)
	if len(v) != NumCICColumns {
		panic("flow: CIC row has " + strconv.Itoa(len(v)) + " columns") // a programming error, caught by the tests
	}
}

// UnmarshalJSON reads what MarshalJSON writes, for consumers of the flows topic.
func (c *CIC) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	var src, dst string
	for k, into := range map[string]any{"Source IP": &src, "Destination IP": &dst, "Source Port": &c.SrcPort,
		"Destination Port": &c.DstPort, "Protocol": &c.Protocol} {
		if err := json.Unmarshal(m[k], into); err != nil {
			return fmt.Errorf("cic %q: %w", k, err)
		}
	}
	var err error
	if c.Src, err = netip.ParseAddr(src); err != nil {
		return fmt.Errorf("cic Source IP: %w", err)
	}
	if c.Dst, err = netip.ParseAddr(dst); err != nil {
		return fmt.Errorf("cic Destination IP: %w", err)
	}
	var ts string
	if err := json.Unmarshal(m["Timestamp"], &ts); err != nil {
		return fmt.Errorf("cic Timestamp: %w", err)
	}
	if c.Start, err = time.Parse("02/01/2006 03:04:05 PM", ts); err != nil {
		return fmt.Errorf("cic Timestamp: %w", err)
	}
	for i, name := range CICColumns {
		if raw, ok := m[name]; ok {
			if err := json.Unmarshal(raw, &c.V[i]); err != nil {
				return fmt.Errorf("cic %q: %w", name, err)
			}
		}
	}
	return nil
}

// visit hands every field of c to the callback of its type, in a fixed order: the flow state
// writes and reads the features with it.
func (c *cicFlow) visit(u func(*uint64), i func(*int64), f func(*float64)) {
	w := func(s *welford) {
		u(&s.n)
		for _, x := range [...]*float64{&s.sum, &s.mean, &s.m2, &s.min, &s.max} {
			f(x)
		}
	}
	u(&c.fwd)
	i(&c.start)
	i(&c.last)
	w(&c.iat)
	w(&c.active)
	w(&c.idle)
	i(&c.startActive)
	i(&c.endActive)
	u(&c.subflows)
	for k := range c.flags {
		u(&c.flags[k])
	}
	for k := range c.dir {
		d := &c.dir[k]
		w(&d.len)
		w(&d.iat)
		i(&d.last)
		for _, x := range [...]*uint64{&d.header, &d.minHeader, &d.actData} {
			u(x)
		}
		i(&d.initWin)
		u(&d.psh)
		u(&d.urg)
		b := &d.bulk
		i(&b.start)
		i(&b.last)
		for _, x := range [...]*uint64{&b.runPkts, &b.runBytes, &b.bulks, &b.pkts, &b.bytes} {
			u(x)
		}
		i(&b.dur)
	}
}
