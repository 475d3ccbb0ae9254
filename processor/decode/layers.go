package decode

import (
	"errors"

	"github.com/google/gopacket"
)

// The layers in link.go, ip.go, tunnel.go and dns.go, one protocol family a file as in
// gopacket's layers, are gopacket DecodingLayers written here because gopacket v1.1.19 lacks
// them (SLL2, Teredo, BSD loopback as a DecodingLayer, MPLS as a DecodingLayer), panics on short
// input (LinuxSLL with a long address length, GRE), or allocates per packet (IPv6 hop-by-hop
// options, DNS). Each checks every length before it reads.

// Layer type numbers below gopacket's array bound (2000) keep DecodingLayerSparse lookups an index.
var (
	LayerTypeSLL      = gopacket.RegisterLayerType(1801, gopacket.LayerTypeMetadata{Name: "capfleet-SLL"})
	LayerTypeSLL2     = gopacket.RegisterLayerType(1802, gopacket.LayerTypeMetadata{Name: "capfleet-SLL2"})
	LayerTypeLoopback = gopacket.RegisterLayerType(1803, gopacket.LayerTypeMetadata{Name: "capfleet-Loopback"})
	LayerTypeMPLS     = gopacket.RegisterLayerType(1804, gopacket.LayerTypeMetadata{Name: "capfleet-MPLS"})
	LayerTypeIPv6     = gopacket.RegisterLayerType(1805, gopacket.LayerTypeMetadata{Name: "capfleet-IPv6"})
	LayerTypeGRE      = gopacket.RegisterLayerType(1806, gopacket.LayerTypeMetadata{Name: "capfleet-GRE"})
	LayerTypeTeredo   = gopacket.RegisterLayerType(1807, gopacket.LayerTypeMetadata{Name: "capfleet-Teredo"})
	LayerTypeDNS      = gopacket.RegisterLayerType(1808, gopacket.LayerTypeMetadata{Name: "capfleet-DNS"})
	LayerTypeERSPAN   = gopacket.RegisterLayerType(1809, gopacket.LayerTypeMetadata{Name: "capfleet-ERSPAN"})
	LayerTypePPPoE    = gopacket.RegisterLayerType(1810, gopacket.LayerTypeMetadata{Name: "capfleet-PPPoE"})
	LayerTypeGTPU     = gopacket.RegisterLayerType(1811, gopacket.LayerTypeMetadata{Name: "capfleet-GTPU"})
	LayerTypeGeneve   = gopacket.RegisterLayerType(1812, gopacket.LayerTypeMetadata{Name: "capfleet-Geneve"})
	LayerTypeAH       = gopacket.RegisterLayerType(1813, gopacket.LayerTypeMetadata{Name: "capfleet-AH"})
	LayerTypeIPv4     = gopacket.RegisterLayerType(1814, gopacket.LayerTypeMetadata{Name: "capfleet-IPv4"})
	LayerTypePBB      = gopacket.RegisterLayerType(1815, gopacket.LayerTypeMetadata{Name: "capfleet-PBB"})
	LayerTypeVNTag    = gopacket.RegisterLayerType(1816, gopacket.LayerTypeMetadata{Name: "capfleet-VNTag"})
	LayerTypeAYIYA    = gopacket.RegisterLayerType(1817, gopacket.LayerTypeMetadata{Name: "capfleet-AYIYA"})
	LayerTypeCMD      = gopacket.RegisterLayerType(1818, gopacket.LayerTypeMetadata{Name: "capfleet-CMD"})
	LayerTypeArista   = gopacket.RegisterLayerType(1819, gopacket.LayerTypeMetadata{Name: "capfleet-Arista"})
	LayerTypeDot11    = gopacket.RegisterLayerType(1820, gopacket.LayerTypeMetadata{Name: "capfleet-Dot11"})
)

// Preallocated so the error path does not allocate either.
var (
	errTruncated = errors.New("truncated")
	errMalformed = errors.New("malformed")
)
