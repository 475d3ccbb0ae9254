package replay

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBar draws the bytes done of the run on w until the returned stop is
// called; a run that loops forever gets a spinner instead.
func progressBar(w io.Writer) func(*Replayer) func() {
	return func(r *Replayer) func() {
		total := int64(r.Progress().BytesTotal)
		if total == 0 {
			total = -1
		}
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("replay"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(40),
		)
		quit := make(chan struct{})
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-quit:
					return
				case <-t.C:
					p := r.Progress()
					_ = bar.Set64(int64(p.BytesSent + p.BytesFailed))
				}
			}
		}()
		return func() {
			close(quit)
			<-finished
			p := r.Progress()
			_ = bar.Set64(int64(p.BytesSent + p.BytesFailed))
			_ = bar.Finish()
			io.WriteString(w, "\n")
		}
	}
}
