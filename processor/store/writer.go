package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"
)

// Options tune how a Writer talks to Cassandra. Zero values pick the defaults.
type Options struct {
	// Concurrency bounds the batches in flight at once (default 8).
	Concurrency int
	// MaxBatchStatements and MaxBatchBytes cut one partition's statements into batches. Cassandra refuses
	// batches over batch_size_fail_threshold (50 KiB by default), so the byte bound stays well under it.
	MaxBatchStatements int
	MaxBatchBytes      int
	// RetryMin and RetryMax bound the exponential backoff between attempts (defaults 100ms and 10s).
	RetryMin, RetryMax time.Duration
	// MaxAttempts ends retrying; 0 retries until the context ends, which is what a pipeline wants: it
	// must not move on (and commit) while Cassandra is away.
	MaxAttempts int
	// OnRetry, when set, hears about every failed attempt that will be retried.
	OnRetry func(err error)
}

func (o Options) withDefaults() Options {
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.MaxBatchStatements <= 0 {
		o.MaxBatchStatements = 64
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 32 << 10
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 10 * time.Second
	}
	return o
}

// statement is one bound insert and the partition it lands in.
type statement struct {
	partition string // grouping key: statements with equal keys go as one batch (one replica set, or rows written together)
	cql       string
	args      []any
	size      int
}

// Writer stores packets, flows and checkpoints. Every write is idempotent, so a caller may repeat any of
// them after a failure or a restart. Safe for concurrent use.
type Writer struct {
	s         *gocql.Session
	opts      Options
	sem       chan struct{}
	failing   atomic.Bool
	directory recentRows // rows of packet_block_minutes and packet_block_hours written lately
}

// Failing reports whether the latest attempt to write failed (and nothing succeeded since): Cassandra
// is away or refusing, and the writer is retrying.
func (w *Writer) Failing() bool { return w.failing.Load() }

// NewWriter writes through s, which must be bound to the keyspace (see Connect) so that batches route to
// their partition's replicas.
func NewWriter(s *gocql.Session, opts Options) *Writer {
	opts = opts.withDefaults()
	return &Writer{s: s, opts: opts, sem: make(chan struct{}, opts.Concurrency)}
}

// exec groups statements by partition, sends each group as unlogged batches, at most Concurrency at a
// time, and returns only when every statement was acknowledged (nil) or one failed for good.
func (w *Writer) exec(ctx context.Context, stmts []statement) error {
	if len(stmts) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for _, b := range w.batches(stmts) {
		if !w.acquire(ctx) {
			break
		}
		wg.Add(1)
		go func(b []statement) {
			defer wg.Done()
			defer func() { <-w.sem }()
			if err := w.execWithRetry(ctx, b); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		}(b)
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// acquire takes a concurrency slot, or returns false (holding none) once ctx ended. When both are ready
// select picks either: a slot taken together with the end must go back, or every rebalance during an
// outage would keep one more until no write could start.
func (w *Writer) acquire(ctx context.Context) bool {
	select {
	case w.sem <- struct{}{}:
		if ctx.Err() != nil {
			<-w.sem
			return false
		}
		return true
	case <-ctx.Done():
		return false
	}
}

// batches keeps the order of first appearance of each partition, so a run is reproducible.
func (w *Writer) batches(stmts []statement) [][]statement {
	order := []string{}
	groups := map[string][]statement{}
	for _, s := range stmts {
		if _, ok := groups[s.partition]; !ok {
			order = append(order, s.partition)
		}
		groups[s.partition] = append(groups[s.partition], s)
	}
	var out [][]statement
	for _, p := range order {
		g := groups[p]
		start, bytes := 0, 0
		for i, s := range g {
			if i > start && (i-start >= w.opts.MaxBatchStatements || bytes+s.size > w.opts.MaxBatchBytes) {
				out = append(out, g[start:i])
				start, bytes = i, 0
			}
			bytes += s.size
		}
		out = append(out, g[start:])
	}
	return out
}

func (w *Writer) execWithRetry(ctx context.Context, b []statement) error {
	delay := w.opts.RetryMin
	for attempt := 1; ; attempt++ {
		err := w.execOnce(ctx, b)
		if err == nil {
			w.failing.Store(false)
			return nil
		}
		if ctx.Err() == nil {
			w.failing.Store(true)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retryable(err) {
			return fmt.Errorf("cassandra: %s: %w", firstLine(b[0].cql), err)
		}
		if w.opts.MaxAttempts > 0 && attempt >= w.opts.MaxAttempts {
			return fmt.Errorf("cassandra: %s: gave up after %d attempts: %w", firstLine(b[0].cql), attempt, err)
		}
		if w.opts.OnRetry != nil {
			w.opts.OnRetry(err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, w.opts.RetryMax)
	}
}

func (w *Writer) execOnce(ctx context.Context, b []statement) error {
	if len(b) == 1 {
		return w.s.Query(b[0].cql, b[0].args...).WithContext(ctx).Idempotent(true).Exec()
	}
	batch := w.s.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
	for _, s := range b {
		batch.Query(s.cql, s.args...)
	}
	return w.s.ExecuteBatch(batch)
}

// retryable says whether waiting could help. A statement Cassandra refuses as invalid, or credentials it
// refuses, fail the same way every time: retrying them would stall the pipeline forever in silence.
func retryable(err error) bool {
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeSyntax, gocql.ErrCodeInvalid, gocql.ErrCodeUnauthorized, gocql.ErrCodeCredentials,
			gocql.ErrCodeConfig, gocql.ErrCodeAlreadyExists, gocql.ErrCodeProtocol:
			return false
		}
	}
	return true
}
