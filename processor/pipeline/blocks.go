package pipeline

import (
	"context"
	"net/netip"
	"sync"

	"capfleet.dev/capfleet/processor/block"
	"capfleet.dev/capfleet/processor/store"
)

// sealBlock ends ps's open block and stores it in the background; it waits only when BlockWrites blocks
// are in flight already, which is how a slow Cassandra slows consumption instead of filling memory.
func (p *Pipeline) sealBlock(ctx context.Context, ps *partition) error {
	sealed := ps.blocks.Seal()
	lts := append([]uint32(nil), ps.linkTypes...)
	ps.linkTypes = ps.linkTypes[:0]
	return p.writes.start(ctx, func(ctx context.Context) error {
		b := store.NewBlock(p.cfg.Sensor, ps.id, sealed, lts)
		block.Release(sealed.Body)
		if err := p.deps.Writer.WriteBlocks(ctx, []store.Block{b}, p.cfg.PacketTTL); err != nil {
			return err
		}
		p.c.PacketsWritten.Add(uint64(b.Packets))
		p.c.BlocksWritten.Add(1)
		p.c.BlockBytes.Add(uint64(len(b.Data)))
		// Only after success: a failed write may still sit in the driver's retry.
		block.ReleaseCompressed(b.Data)
		return nil
	})
}

// addresses lists the IP addresses of the packet just decoded (every header, outer and inner), for the
// block's index. The slice is the pipeline's own array: no allocation per packet.
func (p *Pipeline) addresses() []netip.Addr {
	n := 0
	for i := 0; i < int(p.pkt.NIP) && i < len(p.pkt.IP); i++ {
		p.addrs[n], p.addrs[n+1] = p.pkt.IP[i].Src, p.pkt.IP[i].Dst
		n += 2
	}
	return p.addrs[:n]
}

// blockWrites runs block writes in the background, at most n at once, and keeps the first error: the
// pipeline reports it at its next flush and commits nothing past it.
type blockWrites struct {
	// ctx is the writes' own: a rebalance callback's or a checkpoint's deadline must not cancel a write
	// half way (the error would stop the pipeline), and the final checkpoint runs after Run's context
	// ended. Run cancels it when it returns.
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
}

func (w *blockWrites) init(n int) {
	w.sem = make(chan struct{}, n)
	w.ctx, w.cancel = context.WithCancel(context.Background())
}

func (w *blockWrites) start(ctx context.Context, fn func(context.Context) error) error {
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer func() { <-w.sem }()
		if err := fn(w.ctx); err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		}
	}()
	return nil
}

// wait returns once every write started has ended, with the first error of any.
func (w *blockWrites) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return w.failed()
}

func (w *blockWrites) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
