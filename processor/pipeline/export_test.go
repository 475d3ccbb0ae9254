package pipeline

import "net/netip"

func CommunityIDForTest(proto uint8, src, dst netip.AddrPort) string {
	return communityID(proto, src, dst)
}
