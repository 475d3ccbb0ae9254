package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// benchLine matches one result of `go test -bench`: name-GOMAXPROCS, iterations, then value/unit pairs.
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// gobench turns `go test -bench` output into results lines (section "go", case = package, tool =
// benchmark, one line per metric), passing the raw output through to stderr for the log.
func gobench(_ []string, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	pkg := ""
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(p, "capfleet.dev/capfleet/")
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			fmt.Fprintf(out, "go\t%s\t%s\t%s\t%s\n", pkg, strings.TrimPrefix(m[1], "Benchmark"), f[i+1], f[i])
		}
	}
	return sc.Err()
}
