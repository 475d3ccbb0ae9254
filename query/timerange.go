package query

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// timeRange resolves --since or --from/--to into [from, to]. Exactly one form must be given; --to alone
// defaults nothing, since a capture's time is rarely "now".
func timeRange(since time.Duration, from, to string, now time.Time) (time.Time, time.Time, error) {
	switch {
	case since > 0 && (from != "" || to != ""):
		return time.Time{}, time.Time{}, errors.New("give either --since or --from/--to, not both")
	case since > 0:
		return now.Add(-since), now, nil
	case since < 0:
		return time.Time{}, time.Time{}, fmt.Errorf("--since %s is negative", since)
	case from == "":
		return time.Time{}, time.Time{}, errors.New("a time range is required: --since DURATION, or --from TIME [--to TIME]")
	}
	f, err := parseTime(from)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("--from: %w", err)
	}
	t := now
	if to != "" {
		if t, err = parseTime(to); err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("--to: %w", err)
		}
	}
	if t.Before(f) {
		return time.Time{}, time.Time{}, fmt.Errorf("--to %s is before --from %s", t.Format(time.RFC3339Nano), f.Format(time.RFC3339Nano))
	}
	return f, t, nil
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"}

// parseTime accepts RFC 3339 (a missing zone means UTC) or seconds since the epoch with an optional
// fraction, as capture tools print them (tcpdump -tt, tshark frame.time_epoch, Zeek's ts).
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if sec, frac, ok := strings.Cut(s, "."); isDigits(sec) && (!ok || isDigits(frac)) {
		secs, err := strconv.ParseInt(sec, 10, 64)
		if err != nil {
			return time.Time{}, err
		}
		ns := int64(0)
		if ok {
			frac = (frac + "000000000")[:9]
			ns, _ = strconv.ParseInt(frac, 10, 64)
		}
		return time.Unix(secs, ns).UTC(), nil
	}
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2024-03-01T10:00:00Z) nor seconds since the epoch (1709287200.5)", s)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
