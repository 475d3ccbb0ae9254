package query

import (
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1578508364.922060":          time.Unix(1578508364, 922060000),
		"1578508364":                 time.Unix(1578508364, 0),
		"1578508364.123456789":       time.Unix(1578508364, 123456789),
		"2020-01-08T18:32:44.92206Z": time.Date(2020, 1, 8, 18, 32, 44, 922060000, time.UTC),
		"2020-01-08T19:32:44+01:00":  time.Date(2020, 1, 8, 18, 32, 44, 0, time.UTC),
		"2020-01-08 18:32:44":        time.Date(2020, 1, 8, 18, 32, 44, 0, time.UTC),
		"2020-01-08":                 time.Date(2020, 1, 8, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "1.2.3", "-5", "2020-13-01"} {
		if _, err := parseTime(bad); err == nil {
			t.Errorf("parseTime(%q) accepted", bad)
		}
	}
}

func TestTimeRange(t *testing.T) {
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	from, to, err := timeRange(time.Hour, "", "", now)
	if err != nil || !from.Equal(now.Add(-time.Hour)) || !to.Equal(now) {
		t.Fatalf("--since 1h: %s %s %v", from, to, err)
	}
	from, to, err = timeRange(0, "100", "200.5", now)
	if err != nil || from.Unix() != 100 || to.UnixMilli() != 200500 {
		t.Fatalf("--from 100 --to 200.5: %s %s %v", from, to, err)
	}
	for _, tc := range []struct {
		since    time.Duration
		from, to string
		msg      string
	}{
		{time.Hour, "100", "", "not both"},
		{0, "", "", "required"},
		{0, "200", "100", "before"},
		{-time.Hour, "", "", "negative"},
		{0, "x", "", "--from"},
	} {
		if _, _, err := timeRange(tc.since, tc.from, tc.to, now); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%+v: error %v, want one saying %q", tc, err, tc.msg)
		}
	}
}
