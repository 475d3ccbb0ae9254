package sensor

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A sensor that captures the interface its Kafka traffic leaves by would
// capture its own produce requests, publish them, capture those, and so on.
// So, unless told otherwise, the filter leaves out TCP to and from every
// broker endpoint: the seeds and the brokers the cluster reports at start.

// brokerEndpoints are the IP:port pairs of the seeds and of every broker in
// the cluster's metadata, resolved now. Brokers added later are not covered.
func brokerEndpoints(ctx context.Context, cl *kgo.Client, seeds []string) ([]string, error) {
	hostPorts := map[string]bool{}
	for _, s := range seeds {
		hostPorts[strings.TrimSpace(s)] = true
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	brokers, err := kadm.NewClient(cl).ListBrokers(ctx)
	if err != nil {
		return nil, fmt.Errorf("kafka: list brokers: %w", err)
	}
	for _, b := range brokers {
		hostPorts[net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))] = true
	}
	eps := map[string]bool{}
	for hp := range hostPorts {
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			continue
		}
		ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("kafka: resolve broker %s: %w", hp, err)
		}
		for _, ip := range ips {
			eps[net.JoinHostPort(ip.IP.String(), port)] = true
		}
	}
	out := make([]string, 0, len(eps))
	for ep := range eps {
		out = append(out, ep)
	}
	sort.Strings(out)
	return out, nil
}

// excludeEndpoints puts "not (tcp and (host A and port P or ...))" in front
// of the user's filter. In front, because libpcap's `vlan` shifts the offsets
// of what follows it in a compiled-for-file program.
func excludeEndpoints(filter string, endpoints []string) string {
	if len(endpoints) == 0 {
		return filter
	}
	terms := make([]string, 0, len(endpoints))
	for _, ep := range endpoints {
		host, port, _ := net.SplitHostPort(ep)
		terms = append(terms, fmt.Sprintf("(host %s and port %s)", host, port))
	}
	expr := "not (tcp and (" + strings.Join(terms, " or ") + "))"
	if strings.TrimSpace(filter) == "" {
		return expr
	}
	return expr + " and (" + filter + ")"
}
