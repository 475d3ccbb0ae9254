package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// results holds every measurement of one bench run, remembering the order in which sections,
// cases, tools and metrics first appeared so the tables follow the order the script ran them in.
type results struct {
	sections []string
	cases    map[string][]string    // section -> cases
	tools    map[[2]string][]string // section, case -> tools
	metrics  map[[2]string][]string // section, case -> metrics
	values   map[[4]string][]float64
}

func readResults(path string) (*results, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &results{cases: map[string][]string{}, tools: map[[2]string][]string{},
		metrics: map[[2]string][]string{}, values: map[[4]string][]float64{}}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		c := strings.Split(line, "\t")
		if len(c) != 5 {
			return nil, fmt.Errorf("%s:%d: want 5 tab-separated fields, got %d: %q", path, n, len(c), line)
		}
		v, err := strconv.ParseFloat(c[4], 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: value %q: %w", path, n, c[4], err)
		}
		r.add(c[0], c[1], c[2], c[3], v)
	}
	return r, sc.Err()
}

func (r *results) add(section, kase, tool, metric string, v float64) {
	if _, ok := r.cases[section]; !ok {
		r.sections = append(r.sections, section)
	}
	r.cases[section] = appendNew(r.cases[section], kase)
	sc := [2]string{section, kase}
	r.tools[sc] = appendNew(r.tools[sc], tool)
	r.metrics[sc] = appendNew(r.metrics[sc], metric)
	k := [4]string{section, kase, tool, metric}
	r.values[k] = append(r.values[k], v)
}

func appendNew(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// stat is the median of a figure's runs with their range.
type stat struct {
	med, min, max float64
	n             int
}

func (r *results) stat(section, kase, tool, metric string) (stat, bool) {
	v := r.values[[4]string{section, kase, tool, metric}]
	if len(v) == 0 {
		return stat{}, false
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{med: m, min: s[0], max: s[len(s)-1], n: len(s)}, true
}

func (r *results) med(section, kase, tool, metric string) (float64, bool) {
	s, ok := r.stat(section, kase, tool, metric)
	return s.med, ok
}

// capfleetTool is the tool of a comparison that is capfleet's; the others are its references.
func (r *results) capfleetTool(section, kase string) string {
	for _, t := range r.tools[[2]string{section, kase}] {
		if strings.HasPrefix(t, "capfleet") {
			return t
		}
	}
	return ""
}

// num prints a figure with three significant digits, without exponents for the sizes seen here.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case v == math.Trunc(v) && a < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64) // counts: packets, drops, records
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a >= 0.001:
		return strconv.FormatFloat(v, 'f', 3+int(-math.Floor(math.Log10(a)))-1, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func (s stat) String() string {
	if s.n < 2 || s.min == s.max {
		return num(s.med)
	}
	return fmt.Sprintf("%s (%s–%s)", num(s.med), num(s.min), num(s.max))
}
