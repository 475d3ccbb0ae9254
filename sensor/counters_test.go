package sensor

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestRxDroppedGrowthSurvivesCounterReset(t *testing.T) {
	var c ifaceCounters
	for _, v := range []uint64{100, 103, 103, 110, 2 /* interface recreated */, 5} {
		c.observeRxDropped(v)
	}
	// 100 is the base; then +3, +0, +7, +2 (since the reset), +3.
	if got := c.ifaceDrops.Load(); got != 15 {
		t.Fatalf("interface drops %d, want 15", got)
	}
}

func TestProducedCountsBatches(t *testing.T) {
	var c ifaceCounters
	c.captured.Add(10)
	produced(&c, 4, 240, nil)
	produced(&c, 6, 360, fmt.Errorf("partition 1: %w", errors.New("NOT_ENOUGH_REPLICAS")))
	got := c.snapshot()
	if got.PacketsPublished != 4 || got.BytesPublished != 240 || got.ProduceFailures != 6 || got.Buffered() != 0 {
		t.Fatalf("%+v", got)
	}
	if p := c.lastProduceErr.Load(); p == nil || *p != "partition 1: NOT_ENOUGH_REPLICAS" {
		t.Fatalf("last produce error %v", p)
	}
}

func TestConfigErrorsNameTheFlag(t *testing.T) {
	for _, c := range []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.Interfaces = []string{"eth0", "eth0"} }, "--interfaces"},
		{func(c *Config) { c.SampleRate = 0 }, "--sample-rate 0"},
		{func(c *Config) { c.RingBlockSizeKB = 6 }, "--ring-block-size-kb 6: want 0 (sized with the ring) or a multiple"},
		{func(c *Config) { c.RingBlockSizeKB = 64 }, "--ring-block-size-kb 64: a block must hold one packet of --snaplen 262144"},
		{func(c *Config) { c.Interfaces = []string{"any", "eth0"} }, `--interfaces ["any" "eth0"]: any already captures every interface; give it alone`},
		{func(c *Config) { c.FanoutGroup = 70000 }, "--fanout-group 70000"},
		{func(c *Config) { c.Topic = "" }, "--topic: required"},
		{func(c *Config) { c.Compression = "brotli" }, `--compression "brotli"`},
	} {
		cfg := DefaultConfig()
		cfg.Topic = "packets"
		c.mutate(&cfg)
		err := cfg.validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
	ok := DefaultConfig()
	ok.Topic = "packets"
	if err := ok.validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}
