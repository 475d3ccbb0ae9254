package replay

import (
	"context"
	"runtime"
	"time"
)

// spinWindow is how close to a deadline the waiter stops sleeping and yields
// instead: the Go timer wakes up tens of microseconds late, which at 10,000+
// packets/s is a sizable part of a gap. Kept small because the spin costs CPU.
const spinWindow = 100 * time.Microsecond

// cancelCheck is the longest sleep taken without watching the context.
const cancelCheck = 20 * time.Millisecond

// waiter sleeps until absolute deadlines, with one reusable timer.
type waiter struct {
	timer *time.Timer
}

func newWaiter() *waiter {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &waiter{timer: t}
}

// until returns when deadline has passed or ctx is done (with ctx's error).
func (w *waiter) until(ctx context.Context, deadline time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		switch {
		case left > cancelCheck:
			w.timer.Reset(left - spinWindow)
			select {
			case <-ctx.Done():
				w.timer.Stop()
				return ctx.Err()
			case <-w.timer.C:
			}
		case left > spinWindow:
			time.Sleep(left - spinWindow)
		default:
			runtime.Gosched()
		}
	}
}
