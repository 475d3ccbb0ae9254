package workload

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"capfleet.dev/capfleet/internal/kafkaconn"
)

// Port 1 on loopback: nothing listens there, nothing leaves the host.
var nowhere = kafkaconn.Config{Brokers: []string{"127.0.0.1:1"}}

func TestProducerUnreachable(t *testing.T) {
	cases := map[string]struct {
		p    Producer
		want string
	}{
		"waiting":  {Producer{Kafka: nowhere, Topic: "packets", Timeout: time.Second, WaitForKafka: true}, "kafka 127.0.0.1:1: unreachable for 1s: "},
		"one look": {Producer{Kafka: nowhere, Topic: "packets", Timeout: 5 * time.Second}, `kafka 127.0.0.1:1: looking up topic "packets": `},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cl, err := NewPacketsProducer(context.Background(), c.p)
			if err == nil {
				cl.Close()
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), c.want) || !strings.Contains(err.Error(), "connection refused") {
				t.Fatalf("error %q, want %q... connection refused", err, c.want)
			}
		})
	}
}

func TestProducerBadBrokerFlag(t *testing.T) {
	_, err := NewPacketsProducer(context.Background(), Producer{Kafka: kafkaconn.Config{Brokers: []string{"nohost"}}, Topic: "packets", Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "--kafka-brokers") {
		t.Fatalf("error %v", err)
	}
}

func TestCheckDetail(t *testing.T) {
	p := Producer{Kafka: kafkaconn.Config{Brokers: []string{"k1:9092", "k2:9092"}}, Topic: "packets"}
	hinted := p
	hinted.MissingHint = "ask the operator"
	cases := []struct {
		p    Producer
		d    kadm.TopicDetail
		want string
	}{
		{p, kadm.TopicDetail{Topic: "packets"}, ""},
		{p, kadm.TopicDetail{}, `kafka k1:9092,k2:9092: topic "packets" does not exist`},
		{p, kadm.TopicDetail{Topic: "packets", Err: kerr.UnknownTopicOrPartition}, `kafka k1:9092,k2:9092: topic "packets" does not exist`},
		{hinted, kadm.TopicDetail{}, `kafka k1:9092,k2:9092: topic "packets" does not exist (ask the operator)`},
		{p, kadm.TopicDetail{Topic: "packets", Err: kerr.TopicAuthorizationFailed}, `kafka k1:9092,k2:9092: not authorized for topic "packets"`},
		{p, kadm.TopicDetail{Topic: "packets", Err: errors.New("boom")}, `kafka k1:9092,k2:9092: topic "packets": boom`},
	}
	for _, c := range cases {
		err := c.p.checkDetail(context.Background(), nil, c.d)
		if got := errString(err); got != c.want {
			t.Errorf("%+v: %q, want %q", c.d, got, c.want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
