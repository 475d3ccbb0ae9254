package pipeline

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestProblemSaysWhatFailsSinceWhenAndFades(t *testing.T) {
	var p Problem
	if s := p.String(); s != "" {
		t.Fatalf("no failure yet: %q", s)
	}
	p.Failed("cassandra: write", errors.New("unavailable"))
	p.Failed("cassandra: write", errors.New("unavailable"))
	if s := p.String(); !strings.HasPrefix(s, "cassandra: write: unavailable (failing since ") || !strings.HasSuffix(s, ", 2 times)") {
		t.Fatalf("two failures: %q", s)
	}
	p.Failed("kafka: commit offsets", errors.New("coordinator moved"))
	if s := p.String(); !strings.HasPrefix(s, "kafka: commit offsets: coordinator moved") || !strings.HasSuffix(s, ", 1 times)") {
		t.Fatalf("another failure starts its own count: %q", s)
	}
	p.Cleared()
	if s := p.String(); s != "" {
		t.Fatalf("cleared by progress: %q", s)
	}
	p.Failed("cassandra: write", errors.New("unavailable"))
	p.mu.Lock()
	p.last = p.last.Add(-problemFades - time.Second)
	p.mu.Unlock()
	if s := p.String(); s != "" {
		t.Fatalf("a failure not seen for longer than problemFades: %q", s)
	}
}
