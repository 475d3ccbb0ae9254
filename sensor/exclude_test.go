package sensor

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"capfleet.dev/capfleet/internal/kafkatest"
)

func TestExcludeEndpointsGoesFirst(t *testing.T) {
	got := excludeEndpoints("vlan and tcp", []string{"10.0.0.1:9092", "[fd00::1]:9093"})
	want := "not (tcp and ((host 10.0.0.1 and port 9092) or (host fd00::1 and port 9093))) and (vlan and tcp)"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := excludeEndpoints("", nil); got != "" {
		t.Fatalf("no endpoints, no filter: %q", got)
	}
}

// Capturing on the interface Kafka is reached by (loopback here): the
// sensor's own produce traffic stays out of the capture instead of feeding
// back on itself, and each loopback packet counts once, not once leaving and
// once arriving.
func TestNoFeedbackThroughKafkaInterface(t *testing.T) {
	kafka := kafkatest.Plain(t)
	topic := kafkatest.NewTopic(t, kafka, 1)
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	_, kafkaPort, _ := net.SplitHostPort(kafka.Brokers[0])

	cfg := DefaultConfig()
	cfg.Interfaces = []string{"lo"}
	cfg.Topic = topic
	cfg.Kafka = kafka
	cfg.MetricsAddr, cfg.HealthAddr = "", ""
	cfg.RingBlocks = 16
	// Without the exclusion the sensor's produce requests match this filter.
	cfg.Filter = fmt.Sprintf("udp port %d or tcp port %s", sink.LocalAddr().(*net.UDPAddr).Port, kafkaPort)
	s := startSensor(t, cfg)

	conn, err := net.DialUDP("udp", nil, sink.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	send := func(i int) {
		if _, err := conn.Write([]byte(fmt.Sprintf("capfleet sensor test datagram %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	const datagrams = 100
	for i := range datagrams {
		send(i)
	}
	waitFor(t, "the datagrams captured and published", func() bool {
		c := s.Counters()
		return c.PacketsCaptured >= datagrams && c.Buffered() == 0
	})
	// Publishing them put produce requests on loopback; a last datagram,
	// read off the ring after those, shows whether any of them was captured.
	send(datagrams)
	waitFor(t, "the last datagram", func() bool { return s.Counters().PacketsCaptured > datagrams })
	s.stop(t)

	if c := s.Counters(); c.PacketsCaptured != datagrams+1 {
		t.Fatalf("captured %d packets for %d datagrams: %+v", c.PacketsCaptured, datagrams+1, c)
	}
	for _, r := range consumeAll(t, kafka, topic) {
		if !strings.Contains(string(r.Value), "capfleet sensor test datagram") {
			t.Fatalf("captured something else: % x", r.Value[:min(len(r.Value), 64)])
		}
	}
}
