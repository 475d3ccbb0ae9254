package flow

// Zeek's TCP timers (attempt, close, reset) of the open flows: a min-heap of the flows that have
// one pending, by the earliest, so that Expire finds the due ones without a walk of the table.

// setTimer sets one of f's timers to at and files f by its earliest.
func (t *Table) setTimer(f *entry, timer *int64, at int64) {
	*timer = at
	t.reschedule(f)
}

// reschedule files f by its earliest pending timer, or takes it out of the heap when none is.
func (t *Table) reschedule(f *entry) {
	x := f.ext
	due := int64(0)
	for _, at := range [...]int64{x.attemptAt, x.closeAt, x.resetAt} {
		if at != 0 && (due == 0 || at < due) {
			due = at
		}
	}
	if due != 0 {
		t.nextExpire = min(t.nextExpire, due)
	}
	switch {
	case due == 0:
		if x.heapIdx >= 0 {
			t.heapRemove(f)
		}
	case x.heapIdx < 0:
		x.due = due
		x.heapIdx = int32(len(t.timers))
		t.timers = append(t.timers, f)
		t.heapUp(int(x.heapIdx))
	default:
		x.due = due
		if !t.heapDown(int(x.heapIdx)) {
			t.heapUp(int(x.heapIdx))
		}
	}
}

func (t *Table) heapRemove(f *entry) {
	i := int(f.ext.heapIdx)
	last := len(t.timers) - 1
	if i != last {
		t.heapSwap(i, last)
	}
	t.timers[last] = nil
	t.timers = t.timers[:last]
	f.ext.heapIdx = -1
	if i != last {
		if !t.heapDown(i) {
			t.heapUp(i)
		}
	}
}

func (t *Table) heapSwap(i, j int) {
	h := t.timers
	h[i], h[j] = h[j], h[i]
	h[i].ext.heapIdx, h[j].ext.heapIdx = int32(i), int32(j)
}

func (t *Table) heapUp(i int) {
	h := t.timers
	for i > 0 {
		p := (i - 1) / 2
		if h[p].ext.due <= h[i].ext.due {
			break
		}
		t.heapSwap(i, p)
		i = p
	}
}

// heapDown sinks the element at i and reports whether it moved.
func (t *Table) heapDown(i int) bool {
	h := t.timers
	start := i
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		c := l
		if r := l + 1; r < len(h) && h[r].ext.due < h[l].ext.due {
			c = r
		}
		if h[i].ext.due <= h[c].ext.due {
			break
		}
		t.heapSwap(i, c)
		i = c
	}
	return i != start
}
