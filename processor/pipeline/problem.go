package pipeline

import (
	"fmt"
	"sync"
	"time"
)

// Problem remembers the failure the pipeline keeps retrying, for the heartbeat: a processor retries a
// sink or Kafka error instead of exiting (the operator may fix it), so its pod stays Running and only
// this tells the resource's status why nothing moves. Safe for concurrent use.
type Problem struct {
	mu          sync.Mutex
	what        string
	since, last time.Time
	times       int
}

// problemFades is how long a failure that was not seen again stays reported: long enough to span a
// few heartbeats and retry delays, short enough that a recovered quiet pipeline stops reporting it.
const problemFades = 30 * time.Second

// Failed records a failure of what (a sink, or Kafka's fetch or commit).
func (p *Problem) Failed(what string, err error) {
	now := time.Now()
	msg := what + ": " + err.Error()
	p.mu.Lock()
	defer p.mu.Unlock()
	if msg != p.what || now.Sub(p.last) > problemFades {
		p.what, p.since, p.times = msg, now, 0
	}
	p.last = now
	p.times++
}

// Cleared forgets the failure: the pipeline made progress (a commit).
func (p *Problem) Cleared() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.what = ""
}

// String is the failure being retried, with since when and how often, or "" when there is none.
func (p *Problem) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.what == "" || time.Since(p.last) > problemFades {
		return ""
	}
	return fmt.Sprintf("%s (failing since %s, %d times)", p.what, p.since.UTC().Format(time.RFC3339), p.times)
}
