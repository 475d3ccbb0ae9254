package decodecmd

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"capfleet.dev/capfleet/internal/testenv"
)

// parityFields are compared with tshark for every packet.
var parityFields = []string{
	"frame.number", "frame.time_epoch", "frame.len", "frame.cap_len",
	"eth.src", "eth.dst", "eth.type", "vlan.id",
	"ip.src", "ip.dst", "ip.proto", "ip.ttl", "ip.len",
	"ipv6.src", "ipv6.dst", "ipv6.nxt",
	"tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.ack_raw", "tcp.len",
	"udp.srcport", "udp.dstport", "dns.qry.name",
	"icmp.type", "icmp.code", "icmpv6.type",
}

// tsharkPrefs make tshark show each frame's own headers: with reassembly on, the transport
// header of a fragmented datagram is shown on its last fragment instead of its first.
var tsharkPrefs = []string{"-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"}

// minParity is the share of (packet, field) pairs over the whole corpus on which the decoder and
// tshark must agree, exempted pairs counted as disagreeing.
const minParity = 0.995

// exemption is a set of frames of one capture where a field of ours differs from tshark's, and why.
type exemption struct {
	file   string // path under the corpus
	fields string // field names, comma-separated
	frames string // frame numbers and ranges, comma-separated: "7", "1-20,31"
	reason string
}

// Reasons shared by the exemptions below.
const (
	whyTextFile       = "a text file tshark reads as a capture (one of its text import formats); the decoder reads pcap and pcapng only"
	whyPcapngBlocks   = "pcapng test file with blocks tshark shows as frames of their own (or reads differently) and the reader skips: frame numbers and times shift"
	whyFabricPathFCS  = "tshark takes the last 4 bytes of a Cisco FabricPath frame for an FCS, cutting the inner packet"
	whyQuotedTCP      = "tshark leaves out some fields of TCP headers quoted in ICMP errors (tcp.seq_raw; flags and ack when the header is quoted short) and shows them for others"
	whyDNSHeuristic   = "DNS on a port the decoder does not read it on, found by tshark's UDP heuristic dissector"
	whyCAPWAP         = "CAPWAP carries 802.11 frames (with the frame control byte-swapped, a tshark preference) and its own control messages; not decoded"
	whyFuzzed         = "fuzzed or malformed capture: tshark and the decoder read the garbage differently"
	whyExtendedLabel  = "a DNS name with an extended label type: tshark shows no name here, and <Unknown extended label> elsewhere"
	whySFlow          = "tshark decodes the packet headers sampled inside sFlow datagrams"
	why6LoWPAN        = "6LoWPAN over 802.15.4 not decoded"
	whyISL            = "Cisco ISL (destination 01:00:0c:00:00:00) encapsulation: tshark shows the inner frame's addresses"
	whyPIMRegister    = "tshark decodes the IP packet a PIM Register message carries"
	whyJuniper        = "Juniper link types not decoded"
	whyJumbogram      = "a BIG TCP jumbogram: tshark takes the length from the hop-by-hop jumbo option"
	whyForwardPointer = "a DNS name with a forward compression pointer: tshark refuses it"
	whyExtendedEcho   = "ICMP extended echo (RFC 8335) quoting a header: tshark decodes it"
	whySRHEthernet    = "an Ethernet frame carried in an IPv6 segment routing header (next header 143) not decoded"
	whyISISPurge      = "IS-IS purge originator TLV: tshark shows the system IDs as Ethernet addresses"
	whyLSPPing        = "tshark decodes the IP header an MPLS echo (LSP ping) quotes"
	whyMACsec         = "MACsec (802.1AE) not decoded"
	whyMPLSoUDP       = "MPLS over UDP (port 6635) not decoded"
	whyNHRP           = "tshark decodes the packet an NHRP error indication quotes"
	whyNSH            = "Network Service Header (over VXLAN-GPE) not decoded"
	whyOpenFlow       = "OpenFlow packet-in/out messages carry frames tshark decodes"
	whyWCCP           = "WCCP's redirect header in GRE (protocol 0x883e) not decoded"
	whyDNSoverTCP     = "DNS over TCP split across segments: tshark reassembles, we read whole messages only"
	whyRedirectOption = "tshark decodes the packet inside an ICMPv6 Redirected Header option"
	whyMobility       = "tshark stops at a Mobility header that carries a payload protocol"
	whyNestedPBB      = "802.1ah nested deeper than the decoder's layer bound"
	whyAMSDU          = "an 802.11 A-MSDU (several frames in one) is not split"
	whyGTPPrime       = "GTP' (UDP 3386) carrying IP not decoded; GTP-U is"
)

// exemptions were listed from the test's own comparison, then each given its reason.
var exemptions = []exemption{
	// a text file tshark reads as a capture (one of its text import formats); the decoder reads pcap and pcapng only
	{"MANIFEST.tsv", "frame.number,frame.time_epoch,frame.len,frame.cap_len", "1", whyTextFile},
	// pcapng test file with blocks tshark shows as frames of their own (or reads differently) and the reader skips: frame numbers and times shift
	{"gopacket/pcapgo/tests/be/test010.pcapng", "frame.time_epoch", "1-4", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test011.pcapng", "frame.time_epoch", "1,3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test012.pcapng", "frame.time_epoch", "1-2", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test016.pcapng", "frame.time_epoch", "1,3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test017.pcapng", "frame.number,frame.len,frame.cap_len", "1-4", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test018.pcapng", "frame.number,frame.len,frame.cap_len", "6,8", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test018.pcapng", "frame.number,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "5", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test018.pcapng", "frame.number,frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "7", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test018.pcapng", "frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "1,4", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test018.pcapng", "frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,ip.src,ip.dst,ip.ttl,ip.len,udp.srcport,udp.dstport", "2-3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test100.pcapng", "frame.time_epoch", "1,3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test101.pcapng", "frame.time_epoch", "3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test102.pcapng", "frame.len,frame.cap_len,eth.src,eth.dst,ip.src,ip.dst,ip.ttl,ip.len,udp.srcport,udp.dstport", "2", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test102.pcapng", "frame.number,frame.len,frame.cap_len", "8", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test102.pcapng", "frame.number,frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "6", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test102.pcapng", "frame.number,frame.time_epoch,frame.len,frame.cap_len,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "7", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test102.pcapng", "frame.time_epoch,frame.cap_len", "4", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test102.pcapng", "frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "1,3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test102.pcapng", "frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.ttl,ip.len,udp.srcport,udp.dstport", "5", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test201.pcapng", "frame.time_epoch", "3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test202.pcapng", "frame.len,eth.src,eth.dst,ip.src,ip.dst,ip.ttl,ip.len,udp.srcport,udp.dstport", "2", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test202.pcapng", "frame.number,frame.len,frame.cap_len", "10", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test202.pcapng", "frame.number,frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "9", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test202.pcapng", "frame.number,frame.time_epoch,frame.len,frame.cap_len,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "11", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test202.pcapng", "frame.time_epoch,frame.len,eth.src,eth.dst,ip.src,ip.dst,ip.ttl,ip.len,udp.srcport,udp.dstport", "5-6", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test202.pcapng", "frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "1,7", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test202.pcapng", "frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.ttl,ip.len,udp.srcport,udp.dstport", "3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/be/test202.pcapng", "frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.ttl,ip.len,udp.srcport,udp.dstport", "4,8", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test010.pcapng", "frame.time_epoch", "1-4", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test011.pcapng", "frame.time_epoch", "1,3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test012.pcapng", "frame.time_epoch", "1-2", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test016.pcapng", "frame.time_epoch", "1,3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test017.pcapng", "frame.number,frame.len,frame.cap_len", "1-4", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test018.pcapng", "frame.number,frame.len,frame.cap_len", "6,8", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test018.pcapng", "frame.number,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "5", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test018.pcapng", "frame.number,frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "7", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test018.pcapng", "frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "1,4", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test018.pcapng", "frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,ip.src,ip.dst,ip.ttl,ip.len,udp.srcport,udp.dstport", "2-3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test100.pcapng", "frame.time_epoch", "1,3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test101.pcapng", "frame.time_epoch", "3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test102.pcapng", "frame.len,frame.cap_len,eth.src,eth.dst,ip.src,ip.dst,ip.ttl,ip.len,udp.srcport,udp.dstport", "2", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test102.pcapng", "frame.number,frame.len,frame.cap_len", "8", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test102.pcapng", "frame.number,frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "6", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test102.pcapng", "frame.number,frame.time_epoch,frame.len,frame.cap_len,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "7", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test102.pcapng", "frame.time_epoch,frame.cap_len", "4", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test102.pcapng", "frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "1,3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test102.pcapng", "frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.ttl,ip.len,udp.srcport,udp.dstport", "5", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test201.pcapng", "frame.time_epoch", "3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test202.pcapng", "frame.len,eth.src,eth.dst,ip.src,ip.dst,ip.ttl,ip.len,udp.srcport,udp.dstport", "2", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test202.pcapng", "frame.number,frame.len,frame.cap_len", "10", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test202.pcapng", "frame.number,frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "9", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test202.pcapng", "frame.number,frame.time_epoch,frame.len,frame.cap_len,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "11", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test202.pcapng", "frame.time_epoch,frame.len,eth.src,eth.dst,ip.src,ip.dst,ip.ttl,ip.len,udp.srcport,udp.dstport", "5-6", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test202.pcapng", "frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "1,7", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test202.pcapng", "frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.ttl,ip.len,udp.srcport,udp.dstport", "3", whyPcapngBlocks},
	{"gopacket/pcapgo/tests/le/test202.pcapng", "frame.time_epoch,frame.len,frame.cap_len,eth.src,eth.dst,eth.type,ip.src,ip.ttl,ip.len,udp.srcport,udp.dstport", "4,8", whyPcapngBlocks},
	// tshark takes the last 4 bytes of a Cisco FabricPath frame for an FCS, cutting the inner packet
	{"ndpi/ajp.pcap", "tcp.len", "3,6,8,10-11,16,22,25,27,29-30,35", whyFabricPathFCS},
	{"zeek/cisco-fabric-path.pcap", "ipv6.dst", "114,116,118,120,122,124,126,128", whyFabricPathFCS},
	{"zeek/cisco-fabric-path.pcap", "tcp.len", "34,36,38,40,42,44,46,48,50,52,54,56,58,60,62,64", whyFabricPathFCS},
	// tshark leaves out some fields of TCP headers quoted in ICMP errors (tcp.seq_raw; flags and ack when the header is quoted short) and shows them for others
	{"ndpi/alexa-app.pcapng", "tcp.flags,tcp.seq_raw,tcp.ack_raw", "56,115", whyQuotedTCP},
	{"ndpi/instagram.pcap", "tcp.seq_raw", "341-342,417-418,439", whyQuotedTCP},
	{"zeek/smtp.pcap", "tcp.seq_raw", "26,28-30", whyQuotedTCP},
	// DNS on a port the decoder does not read it on, found by tshark's UDP heuristic dissector
	{"ndpi/avast_securedns.pcapng", "dns.qry.name", "1-77", whyDNSHeuristic},
	{"ndpi/custom_rules_ipv6.pcapng", "dns.qry.name", "1-2", whyDNSHeuristic},
	{"ndpi/dnscrypt-v1-and-resolver-pings.pcap", "dns.qry.name", "1-2,4,6-7,9-19,21,23,25-28,30,32-34,36-41,43-46,49-58,60,62-64,66-71,74-75,77-83,85,87-88,90-105,107,109,111-117,119-120,122-123,125-132,135-137,139-145,147,149-150,152-158,160,162-163,165-178,180,182-184,186-196,199,201-209,211-212,214,216-221,223-224,226-227,229-234,236,238-240,242-253,255-256,258-259,261-265,267-268,270-271,273-280,282,284-286,288-294,296-297,299-300,302-309,311-312,315-324,326-329,332-340,343-344,346-351,353,355-356,358-367,369-370,373-384,386-387,389,391-396,398-399,401,403-412,414-416,419-427,429-430,432,434-442,444-445,447,449-457,459-460,462,464-473,475-476,479-487,489,491-492,494-498,500,502-504,506-509,512-513,515-527,529-532,535-545,547-548,551-559,561,563,565-576,579,581-586", whyDNSHeuristic},
	{"ndpi/dnscrypt-v2.pcap", "dns.qry.name", "1-5", whyDNSHeuristic},
	{"tcpdump/dns_udp_8053.pcap", "dns.qry.name", "1-2", whyDNSHeuristic},
	// CAPWAP carries 802.11 frames (with the frame control byte-swapped, a tshark preference) and its own control messages; not decoded
	{"ndpi/capwap.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len", "318", whyCAPWAP},
	{"ndpi/capwap.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "280,329,337,347,379", whyCAPWAP},
	{"ndpi/capwap.pcap", "ipv6.src,ipv6.dst,ipv6.nxt,icmpv6.type", "281,283,285,292,298", whyCAPWAP},
	{"ndpi/capwap_data.pcapng", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,tcp.srcport,tcp.dstport,tcp.flags,tcp.seq_raw,tcp.ack_raw,tcp.len", "1-14", whyCAPWAP},
	// fuzzed or malformed capture: tshark and the decoder read the garbage differently
	{"ndpi/fuzz-2006-06-26-2594.pcap", "dns.qry.name", "8,29,43,109,116,233,236,243,245,254,293,320,331-332,334,352,355,360,371,398,437,506,512,571,589,615,654,656", whyFuzzed},
	{"ndpi/fuzz-2006-06-26-2594.pcap", "eth.type", "607-608", whyFuzzed},
	{"ndpi/fuzz-2006-06-26-2594.pcap", "ip.len", "303", whyFuzzed},
	{"ndpi/fuzz-2006-06-26-2594.pcap", "ipv6.src,ipv6.dst,ipv6.nxt", "669", whyFuzzed},
	{"ndpi/fuzz-2020-02-16-11740.pcap", "eth.type", "245", whyFuzzed},
	{"ndpi/fuzz-2020-02-16-11740.pcap", "ipv6.src,ipv6.dst,ipv6.nxt", "238", whyFuzzed},
	{"ndpi/fuzz-2021-06-07-c6c72a0a56.pcap", "frame.time_epoch,frame.len", "1", whyFuzzed},
	{"ndpi/fuzz-2021-10-13.pcap", "frame.time_epoch", "1", whyFuzzed},
	{"ndpi/ip_fragmented_garbage.pcap", "tcp.flags,tcp.seq_raw,tcp.ack_raw", "314,627", whyFuzzed},
	{"ndpi/ip_fragmented_garbage.pcap", "tcp.seq_raw", "1,940", whyFuzzed},
	{"ndpi/kerberos_fuzz.pcapng", "tcp.len", "1", whyFuzzed},
	{"ndpi/malformed_dns.pcap", "dns.qry.name", "2-3,5-6", whyFuzzed},
	{"ndpi/reasm_crash_anon.pcapng", "tcp.len", "95", whyFuzzed},
	{"tcpdump/atm-heapoverflow.pcap", "frame.len,frame.cap_len", "1", whyFuzzed},
	{"tcpdump/atm-oam-heapoverflow.pcap", "frame.len,frame.cap_len", "1", whyFuzzed},
	{"tcpdump/atm-oam-loopback-print-overrun.pcap", "frame.time_epoch,frame.len,frame.cap_len", "1", whyFuzzed},
	{"tcpdump/bad-ipv4-version-pgm-heapoverflow.pcap", "ipv6.nxt", "1", whyFuzzed},
	{"tcpdump/cve2015-0261-crash.pcap", "ipv6.src,ipv6.dst,ipv6.nxt", "1", whyFuzzed},
	{"tcpdump/cve2015-0261-ipv6.pcap", "ipv6.src,ipv6.dst,ipv6.nxt", "1-2", whyFuzzed},
	{"tcpdump/dns-badlabel.pcap", "dns.qry.name", "1", whyFuzzed},
	{"tcpdump/icmp-icmp_print-oobr-1.pcap", "icmp.type,icmp.code", "1", whyFuzzed},
	{"tcpdump/icmp-icmp_print-oobr-2.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len", "1-3", whyFuzzed},
	{"tcpdump/icmp6_nodeinfo_oobr.pcap", "ipv6.src,ipv6.dst,ipv6.nxt,icmpv6.type", "1", whyFuzzed},
	{"tcpdump/ip_printroute_asan.pcap", "ip.dst", "1", whyFuzzed},
	{"tcpdump/ipv4_invalid_hdr_length.pcap", "ip.len", "1", whyFuzzed},
	{"tcpdump/juniper_header-heapoverflow.pcap", "eth.src,eth.dst,eth.type", "1", whyFuzzed},
	{"tcpdump/kday1.pcap", "ipv6.src,ipv6.dst,ipv6.nxt", "1", whyFuzzed},
	{"tcpdump/kday3.pcap", "ipv6.src,ipv6.dst,ipv6.nxt", "2", whyFuzzed},
	{"tcpdump/q933-heapoverflow-2.pcap", "eth.src,eth.dst", "2,4,6,8,10,13", whyFuzzed},
	{"tcpdump/rx_serviceid_oobr.pcap", "frame.time_epoch", "2", whyFuzzed},
	{"tcpdump/timestamp_invalid_micro.pcap", "frame.time_epoch", "2-3", whyFuzzed},
	{"tcpdump/timestamp_invalid_nano.pcap", "frame.time_epoch", "2-3", whyFuzzed},
	{"tcpdump/vrrp-vrrp_print-oobr.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len", "1-3", whyFuzzed},
	{"tcpdump/wb-oobr.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "1,3,5", whyFuzzed},
	{"zeek/quic/vector-max-size-crash.pcap", "dns.qry.name", "1", whyFuzzed},
	{"zeek/trunc/mpls-6in6-broken.pcap", "ip.dst,ip.len", "217,342,535,685,948,1220,1501,1660,1722", whyFuzzed},
	{"zeek/trunc/mpls-6in6-broken.pcap", "ip.len", "417,427", whyFuzzed},
	{"zeek/trunc/mpls-6in6-broken.pcap", "ip.src,ip.proto,ip.ttl,ip.len", "1088", whyFuzzed},
	// a DNS name with an extended label type: tshark shows no name here, and <Unknown extended label> elsewhere
	{"ndpi/portable_executable.pcap", "dns.qry.name", "29", whyExtendedLabel},
	// tshark decodes the packet headers sampled inside sFlow datagrams
	{"ndpi/sflow.pcap", "eth.src,eth.dst,eth.type,vlan.id,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,icmp.type,icmp.code", "4", whySFlow},
	{"tcpdump/sflow-print-v6.pcap", "eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len", "4,8,14,20-21", whySFlow},
	{"tcpdump/sflow_expanded.pcap", "eth.src,eth.dst,eth.type,vlan.id,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,tcp.srcport,tcp.dstport,tcp.flags,tcp.seq_raw,tcp.ack_raw", "1", whySFlow},
	// 6LoWPAN over 802.15.4 not decoded
	{"tcpdump/802_15_4-data.pcap", "ipv6.src,ipv6.dst,ipv6.nxt", "1", why6LoWPAN},
	// Cisco ISL (destination 01:00:0c:00:00:00) encapsulation: tshark shows the inner frame's addresses
	{"tcpdump/DTP.pcap", "eth.dst", "2,4,6,8,10", whyISL},
	// tshark decodes the IP packet a PIM Register message carries
	{"tcpdump/PIM_register_register-stop.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,icmp.type,icmp.code", "1", whyPIMRegister},
	{"tcpdump/pim-packet-assortment.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len", "51-54,59-62,68,78", whyPIMRegister},
	{"tcpdump/pim-packet-assortment.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "55-58,63-67,69-77", whyPIMRegister},
	{"tcpdump/pim-packet-assortment.pcap", "ipv6.src,ipv6.dst,ipv6.nxt", "178-181,186-189,195-196", whyPIMRegister},
	{"tcpdump/pim-packet-assortment.pcap", "ipv6.src,ipv6.dst,ipv6.nxt,udp.srcport,udp.dstport", "182-185,190-194", whyPIMRegister},
	// Juniper link types not decoded
	{"tcpdump/bgp-aigp.pcap", "eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,tcp.srcport,tcp.dstport,tcp.flags,tcp.seq_raw,tcp.ack_raw,tcp.len", "1", whyJuniper},
	// a BIG TCP jumbogram: tshark takes the length from the hop-by-hop jumbo option
	{"tcpdump/bigtcp-ipv6-hbh.pcap", "tcp.len", "1", whyJumbogram},
	// a DNS name with a forward compression pointer: tshark refuses it
	{"tcpdump/dns_fwdptr.pcap", "dns.qry.name", "1", whyForwardPointer},
	// ICMP extended echo (RFC 8335) quoting a header: tshark decodes it
	{"tcpdump/icmp-rfc8335-missing-bytes.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,icmp.type,icmp.code", "1", whyExtendedEcho},
	// an Ethernet frame carried in an IPv6 segment routing header (next header 143) not decoded
	{"tcpdump/ipv6-srh-ipproto-ether.pcap", "eth.src,eth.dst,eth.type,ipv6.src,ipv6.dst,ipv6.nxt,icmpv6.type", "1", whySRHEthernet},
	// IS-IS purge originator TLV: tshark shows the system IDs as Ethernet addresses
	{"tcpdump/isis_poi.pcap", "eth.src,eth.dst", "1", whyISISPurge},
	{"tcpdump/isis_poi2.pcap", "eth.src,eth.dst", "1", whyISISPurge},
	// tshark decodes the IP header an MPLS echo (LSP ping) quotes
	{"tcpdump/lspping-fec-ldp.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,tcp.srcport,tcp.dstport,tcp.flags,tcp.seq_raw,tcp.ack_raw,tcp.len", "1,4-5", whyLSPPing},
	{"tcpdump/lspping-fec-ldp.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "2,6,8,10,12", whyLSPPing},
	{"tcpdump/lspping-fec-rsvp.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "1,3,5,7,9", whyLSPPing},
	{"tcpdump/mpls-traceroute.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "1,3,5,7,9,11,13,15,17", whyLSPPing},
	// MACsec (802.1AE) not decoded
	{"tcpdump/macsec-integonly.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,icmp.type,icmp.code", "1", whyMACsec},
	{"tcpdump/macsec-short-longer.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "1", whyMACsec},
	{"tcpdump/macsec-short-shorter.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "1", whyMACsec},
	{"tcpdump/macsec-short-valid.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "1", whyMACsec},
	// MPLS over UDP (port 6635) not decoded
	{"tcpdump/mpls-over-udp.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,icmp.type,icmp.code", "1-2", whyMPLSoUDP},
	// tshark decodes the packet an NHRP error indication quotes
	{"tcpdump/nhrp-trace.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,icmp.type,icmp.code", "1", whyNHRP},
	// Network Service Header (over VXLAN-GPE) not decoded
	{"tcpdump/nsh-over-vxlan-gpe.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "1", whyNSH},
	{"tcpdump/nsh.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "1", whyNSH},
	// OpenFlow packet-in/out messages carry frames tshark decodes
	{"tcpdump/of10_s4810.pcap", "eth.src,eth.dst", "47,132", whyOpenFlow},
	{"tcpdump/of10_s4810.pcap", "eth.src,eth.dst,eth.type", "110", whyOpenFlow},
	{"tcpdump/of13_ericsson.pcapng", "eth.src,eth.dst,eth.type,ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "65,68-69", whyOpenFlow},
	{"tcpdump/of13_ericsson.pcapng", "eth.src,eth.dst,eth.type,ip.src,ip.proto,ip.ttl,ip.len", "66", whyOpenFlow},
	// WCCP's redirect header in GRE (protocol 0x883e) not decoded
	{"tcpdump/wccp_redirect_gre.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,tcp.srcport,tcp.dstport,tcp.flags,tcp.seq_raw,tcp.ack_raw,tcp.len", "1", whyWCCP},
	// DNS over TCP split across segments: tshark reassembles, we read whole messages only
	{"zeek/dns/tkey.pcap", "dns.qry.name", "7", whyDNSoverTCP},
	// tshark decodes the packet inside an ICMPv6 Redirected Header option
	{"zeek/icmp/icmp6-redirect-hdr-opt.pcap", "ipv6.src,ipv6.dst,ipv6.nxt,udp.srcport,udp.dstport", "1", whyRedirectOption},
	// tshark stops at a Mobility header that carries a payload protocol
	{"zeek/ipv6-mobility-dst-opts.pcap", "udp.srcport,udp.dstport", "1", whyMobility},
	// 802.1ah nested deeper than the decoder's layer bound
	{"zeek/pbb-recursive-frames.pcapng", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,udp.srcport,udp.dstport", "1", whyNestedPBB},
	// an 802.11 A-MSDU (several frames in one) is not split
	{"zeek/tunnels/gre-aruba-amsdu.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,tcp.srcport,tcp.dstport,tcp.flags,tcp.seq_raw,tcp.ack_raw,tcp.len", "1", whyAMSDU},
	// GTP' (UDP 3386) carrying IP not decoded; GTP-U is
	{"zeek/tunnels/gtp/gtp_control_prime.pcap", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,icmp.type,icmp.code", "9-10", whyGTPPrime},
	{"zeek/tunnels/gtp/pdp_ctx_messages.pcapng", "ip.src,ip.dst,ip.proto,ip.ttl,ip.len,icmp.type,icmp.code", "13-14", whyGTPPrime},
}

// exemptionSet is an exemption parsed for lookups.
type exemptionSet struct {
	fields map[string]bool
	frames [][2]int
}

func parseExemptions(t testing.TB, es []exemption) map[string][]int {
	byFile := map[string][]int{}
	for i, e := range es {
		if e.file == "" || e.fields == "" || e.frames == "" || e.reason == "" {
			t.Fatalf("exemption %d (%s) lacks a file, field, frame or reason", i, e.file)
		}
		byFile[e.file] = append(byFile[e.file], i)
	}
	return byFile
}

func (e exemption) parse(t testing.TB) exemptionSet {
	s := exemptionSet{fields: map[string]bool{}}
	for _, f := range strings.Split(e.fields, ",") {
		if !slices.Contains(parityFields, f) {
			t.Fatalf("exemption for %s names %q, not a parity field", e.file, f)
		}
		s.fields[f] = true
	}
	for _, r := range strings.Split(e.frames, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err1 := strconv.Atoi(lo)
		b, err2 := a, error(nil)
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 1 || b < a {
			t.Fatalf("exemption for %s: bad frames %q", e.file, e.frames)
		}
		s.frames = append(s.frames, [2]int{a, b})
	}
	return s
}

func (s exemptionSet) covers(field string, frame int) bool {
	if !s.fields[field] {
		return false
	}
	for _, r := range s.frames {
		if frame >= r[0] && frame <= r[1] {
			return true
		}
	}
	return false
}

// parityCount is what the comparison found for one field, or one file's field.
type parityCount struct{ pairs, agree, exempt int }

// parityTally gathers the counts of every file compared; files are compared concurrently.
type parityTally struct {
	mu      sync.Mutex
	byField map[string]*parityCount
	byFile  map[[2]string]*parityCount // file, field
	hits    []int                      // pairs each exemption covered
	files   int
	packets int
}

// TestDecodeParityWithTshark decodes every capture tshark reads under the shared corpus (every
// file of every folder, whatever its link type or size; tshark itself says which files are
// captures) and compares every occurrence of each field with tshark's -E occurrence=a output, run
// with IP reassembly off so each frame shows its own headers. A pair that differs fails the test
// unless an exemption names its file, field and frame; an exemption that covers no differing pair
// fails it too, and so does a parity under minParity. The parity per field is printed at the end
// and written to .cache/tshark-parity.txt. tshark's output is cached in .cache/tshark-fields by
// file content, arguments and tshark version: the first run takes many minutes (one tshark start
// per file), later ones about a minute.
func TestDecodeParityWithTshark(t *testing.T) {
	root := testenv.Pcaps(t)
	tshark := needTool(t, "tshark")
	version := tsharkVersion(t, tshark)
	cacheDir := filepath.Join(repoRoot(t), ".cache", "tshark-fields")
	files := allFiles(t, root)

	byFile := parseExemptions(t, exemptions)
	sets := make([]exemptionSet, len(exemptions))
	for i, e := range exemptions {
		sets[i] = e.parse(t)
	}
	tally := &parityTally{byField: map[string]*parityCount{}, byFile: map[[2]string]*parityCount{}, hits: make([]int, len(exemptions))}

	work := make(chan string)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				want, ok := tsharkFields(t, tshark, version, cacheDir, f)
				if !ok {
					continue // not a capture tshark reads
				}
				rel, _ := filepath.Rel(root, f)
				var got, errb bytes.Buffer
				o := &decodeOptions{fields: strings.Join(parityFields, ","), output: "tsv"}
				if err := runDecode(&got, &errb, f, o); err != nil {
					// tshark reads what it can of a damaged file; so must we, up to the error.
					t.Logf("%s: decode: %v", rel, err)
				}
				var fileSets []exemptionSet
				var fileIdx []int
				for _, i := range byFile[rel] {
					fileSets, fileIdx = append(fileSets, sets[i]), append(fileIdx, i)
				}
				compareFields(t, rel, got.String(), want, fileSets, fileIdx, tally)
			}
		}()
	}
	for _, f := range files {
		work <- f
	}
	close(work)
	wg.Wait()

	if tally.files < 1000 {
		t.Errorf("only %d captures read by tshark under %s: corpus incomplete?", tally.files, root)
	}
	for i, e := range exemptions {
		if tally.hits[i] == 0 {
			t.Errorf("exemption %s %s frames %s covers no differing pair any more: remove it (%s)", e.file, e.fields, e.frames, e.reason)
		}
	}
	summary := tally.summary()
	t.Log("\n" + summary)
	os.WriteFile(filepath.Join(repoRoot(t), ".cache", "tshark-parity.txt"), []byte(summary), 0o644)
	var all parityCount
	for _, c := range tally.byField {
		all.pairs, all.agree = all.pairs+c.pairs, all.agree+c.agree
	}
	if p := float64(all.agree) / float64(max(all.pairs, 1)); p < minParity {
		t.Errorf("parity %.5f (%d of %d pairs), want at least %.3f", p, all.agree, all.pairs, minParity)
	}
}

// allFiles lists every regular file under root: which are captures is for tshark to say.
func allFiles(t testing.TB, root string) []string {
	var out []string
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if e.Type().IsRegular() {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// splitRows indexes tab-separated lines by their first column, the frame number.
func splitRows(out string) (map[int][]string, []int) {
	rows := map[int][]string{}
	var order []int
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		cols := strings.Split(l, "\t")
		n, err := strconv.Atoi(cols[0])
		if err != nil {
			continue
		}
		if _, dup := rows[n]; !dup {
			order = append(order, n)
		}
		rows[n] = cols
	}
	return rows, order
}

func compareFields(t *testing.T, rel, got, want string, sets []exemptionSet, idx []int, tally *parityTally) {
	gr, gorder := splitRows(got)
	wr, worder := splitRows(want)
	frames := worder
	for _, n := range gorder {
		if _, ok := wr[n]; !ok {
			frames = append(frames, n)
		}
	}
	if len(gr) != len(wr) {
		// Not a failure of its own: each frame one side lacks differs in frame.number, which
		// only an exemption lets pass.
		t.Logf("%s: %d packets decoded, tshark shows %d", rel, len(gr), len(wr))
	}
	counts := make([]parityCount, len(parityFields))
	hits := make([]int, len(sets))
	bad := 0
	for _, n := range frames {
		g, w := gr[n], wr[n]
		for j, name := range parityFields {
			var gv, wv string
			if j < len(g) {
				gv = g[j]
			}
			if j < len(w) {
				wv = w[j]
			}
			counts[j].pairs++
			if gv == wv {
				counts[j].agree++
				continue
			}
			exempt := false
			for k, s := range sets {
				if s.covers(name, n) {
					exempt = true
					hits[k]++
				}
			}
			if exempt {
				counts[j].exempt++
				continue
			}
			bad++
			if bad <= 5 {
				t.Errorf("%s frame %d %s: got %q, tshark %q", rel, n, name, gv, wv)
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d differing fields in all", rel, bad)
	}
	tally.mu.Lock()
	defer tally.mu.Unlock()
	tally.files++
	tally.packets += len(frames)
	for j, name := range parityFields {
		c := tally.byField[name]
		if c == nil {
			c = &parityCount{}
			tally.byField[name] = c
		}
		c.pairs, c.agree, c.exempt = c.pairs+counts[j].pairs, c.agree+counts[j].agree, c.exempt+counts[j].exempt
		if counts[j].agree < counts[j].pairs {
			fc := counts[j]
			tally.byFile[[2]string{rel, name}] = &fc
		}
	}
	for k, i := range idx {
		tally.hits[i] += hits[k]
	}
}

// summary is the parity per field, then the file and field pairs that lose the most.
func (tl *parityTally) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tshark field parity over %d captures, %d packets (-E occurrence=a)\n", tl.files, tl.packets)
	fmt.Fprintf(&b, "%-16s %10s %10s %8s %8s %9s\n", "field", "pairs", "agree", "exempt", "differ", "parity")
	var all parityCount
	for _, name := range parityFields {
		c := tl.byField[name]
		if c == nil {
			c = &parityCount{}
		}
		all.pairs, all.agree, all.exempt = all.pairs+c.pairs, all.agree+c.agree, all.exempt+c.exempt
		fmt.Fprintf(&b, "%-16s %10d %10d %8d %8d %9.5f\n", name, c.pairs, c.agree, c.exempt, c.pairs-c.agree-c.exempt, float64(c.agree)/float64(max(c.pairs, 1)))
	}
	fmt.Fprintf(&b, "%-16s %10d %10d %8d %8d %9.5f\n", "all", all.pairs, all.agree, all.exempt, all.pairs-all.agree-all.exempt, float64(all.agree)/float64(max(all.pairs, 1)))
	type loss struct {
		key  [2]string
		lost int
	}
	var losses []loss
	for k, c := range tl.byFile {
		losses = append(losses, loss{k, c.pairs - c.agree})
	}
	slices.SortFunc(losses, func(a, b loss) int {
		return cmp.Or(b.lost-a.lost, cmp.Compare(a.key[0], b.key[0]), cmp.Compare(a.key[1], b.key[1]))
	})
	fmt.Fprintf(&b, "most pairs lost (exempted ones included):\n")
	for _, l := range losses[:min(len(losses), 40)] {
		fmt.Fprintf(&b, "%8d %s %s\n", l.lost, l.key[0], l.key[1])
	}
	return b.String()
}

// tsharkArgs are tshark's arguments for the parity fields of a file, less the file.
func tsharkArgs() []string {
	args := append([]string{"-n", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"}, tsharkPrefs...)
	for _, f := range parityFields {
		args = append(args, "-e", f)
	}
	return args
}

// tsharkFields runs tshark once per file content, arguments and tshark version, keeping the
// output in the repository's .cache so that later runs do not pay for tshark's start-up again.
// ok is false when tshark reads no capture from the file (a log, a script, a format it does not
// know): that too is cached.
func tsharkFields(t testing.TB, tshark, version, cacheDir, file string) (out string, ok bool) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Error(err)
		return "", false
	}
	args := tsharkArgs()
	h := sha256.New()
	h.Write(data)
	fmt.Fprintln(h, version, strings.Join(args, " "))
	key := filepath.Join(cacheDir, hex.EncodeToString(h.Sum(nil)))
	if b, err := os.ReadFile(key + ".tsv"); err == nil {
		return string(b), true
	}
	if _, err := os.Stat(key + ".unread"); err == nil {
		return "", false
	}
	cmd := exec.Command(tshark, append([]string{"-r", file}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	ok = err == nil || len(stdout) > 0 // tshark exits non-zero on a file cut mid-record after printing what it read
	if ee, isExit := err.(*exec.ExitError); !ok && isExit && ee.ExitCode() < 0 {
		t.Errorf("tshark on %s: %v", file, err) // killed: do not cache
		return "", false
	}
	name, body := key+".tsv", stdout
	if !ok {
		name, body = key+".unread", stderr.Bytes()
	}
	if err := os.MkdirAll(cacheDir, 0o755); err == nil {
		tmp := name + ".tmp" + fmt.Sprint(os.Getpid())
		if os.WriteFile(tmp, body, 0o644) == nil {
			os.Rename(tmp, name)
		}
	}
	return string(stdout), ok
}

func tsharkVersion(t *testing.T, tshark string) string {
	out, err := exec.Command(tshark, "--version").Output()
	if err != nil {
		t.Fatalf("tshark --version: %v", err)
	}
	v, _, _ := strings.Cut(string(out), "\n")
	return v
}

func repoRoot(t testing.TB) string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
