package sensor

import (
	"testing"

	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/packetrecord"
)

// Over the SASL_SSL listener (TLS with the script's CA, SCRAM credentials
// from the secret directory) and keeping 1 packet in 3: the topic holds
// exactly the 1st, 4th, 7th... packet of the capture.
func TestCaptureOverTLSWithSampling(t *testing.T) {
	n := newVethNS(t)
	secure := kafkatest.Secure(t)
	topic := kafkatest.NewTopic(t, secure, e2ePartitions)
	file := sharedPcap(t, e2ePcap)
	all, _ := readPcap(t, file)
	var want [][]byte
	for i, f := range all {
		if i%3 == 0 {
			want = append(want, f)
		}
	}

	cfg := e2eConfig(n, secure, topic)
	cfg.SampleRate = 3
	s := startSensor(t, cfg)
	sent := n.replay(t, file, 20000)
	waitFor(t, "every packet captured and the sample published", func() bool {
		c := s.Counters()
		return c.PacketsCaptured >= uint64(sent) && c.Buffered() == 0
	})
	s.stop(t)

	c := s.Counters()
	if c.PacketsCaptured != uint64(len(all)) || c.PacketsPublished != uint64(len(want)) ||
		c.PacketsSampledOut != uint64(len(all)-len(want)) {
		t.Errorf("want %d captured, %d published, %d sampled out: %+v", len(all), len(want), len(all)-len(want), c)
	}
	if c.KernelDrops+c.InterfaceDrops+c.BufferDrops+c.ProduceFailures != 0 {
		t.Errorf("drops: %+v", c)
	}
	recs := consumeAll(t, secure, topic)
	if d := diffMultisets(multiset(want), multiset(frames(recs))); d != "" {
		t.Fatalf("topic vs every third packet: %s", d)
	}
	checkRecords(t, recs, n.Rx)
}

// Outer VLAN tags, which the kernel moves out of the frame before AF_PACKET
// sees it, are put back with their own TPID: the topic holds the frames as
// sent, for 802.1Q, 802.1ad QinQ (0x88a8 outer) and three stacked tags.
func TestCaptureKeepsVLANTags(t *testing.T) {
	n := newVethNS(t)
	kafka := kafkatest.Plain(t)
	for _, name := range []string{"zeek/http-vlan-0.pcap", "tcpdump/802.1ad_QinQ.pcap", "zeek/vlan-qinqinq.pcap"} {
		t.Run(name, func(t *testing.T) {
			topic := kafkatest.NewTopic(t, kafka, e2ePartitions)
			file := sharedPcap(t, name)
			want, _ := readPcap(t, file)

			s := startSensor(t, e2eConfig(n, kafka, topic))
			sent := n.replay(t, file, 1000)
			waitFor(t, "every packet captured and published", func() bool {
				c := s.Counters()
				return c.PacketsCaptured >= uint64(sent) && c.Buffered() == 0
			})
			s.stop(t)
			if c := s.Counters(); c.PacketsPublished != uint64(len(want)) {
				t.Errorf("published %d of %d: %+v", c.PacketsPublished, len(want), c)
			}
			recs := consumeAll(t, kafka, topic)
			if d := diffMultisets(multiset(want), multiset(frames(recs))); d != "" {
				t.Fatalf("topic vs %s: %s", file, d)
			}
			for _, r := range recs {
				if m, f, _ := packetrecord.Decode(r); m.OrigLen != len(f) {
					t.Fatalf("origlen %d for a %d-byte frame captured whole", m.OrigLen, len(f))
				}
			}
		})
	}
}
