package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// sectionInfo names a comparison and the figure its ratios are taken on (higher is better for all).
var sectionInfo = map[string]struct{ title, headline string }{
	"read":         {"Read a capture file", "MB/s"},
	"decode":       {"Decode to fields", "Mpkt/s"},
	"filter":       {"Display filter (-Y)", "Mpkt/s"},
	"flows":        {"Flows from a file", "Mpkt/s"},
	"replay-veth":  {"Replay onto a veth", "Mpkt/s"},
	"replay-kafka": {"Replay into Kafka", "Mpkt/s"},
	"capture":      {"Capture at line rate", "captured %"},
	"e2e":          {"End to end", "Mpkt/s"},
	"flow-query":   {"One flow's packets (query packets --flow)", ""},
	"fleet":        {"Status at fleet scale", ""},
	"go":           {"Go benchmarks", ""},
}

func report(args []string) error {
	fs := pflag.NewFlagSet("report", pflag.ContinueOnError)
	in := fs.String("results", "", "results.tsv written by hack/bench.sh")
	machine := fs.String("machine", "", "markdown describing the machine, tools and inputs")
	out := fs.String("out", "", "markdown page to write (docs/benchmarks.md)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return errors.New("report: --results and --out are required")
	}
	r, err := readResults(*in)
	if err != nil {
		return err
	}
	var head strings.Builder
	writeHeadline(&head, r)
	writeAims(&head, r)
	fmt.Print(head.String())

	var page strings.Builder
	page.WriteString("# Benchmarks against the tools users would otherwise use\n\n")
	page.WriteString("Written by `make bench` (hack/bench.sh, hack/benchtool); edit those, not this page. Figures are the\n" +
		"median of the runs with the range (min–max) in brackets; ratios are capfleet's median over the\n" +
		"reference's (above 1: capfleet is faster). CPU is user+sys from `/usr/bin/time -v` (or /proc for\n" +
		"long-running processes), peak RSS is the maximum resident set size.\n\n")
	if *machine != "" {
		m, err := os.ReadFile(*machine)
		if err != nil {
			return err
		}
		page.Write(m)
		page.WriteString("\n")
	}
	page.WriteString(head.String())
	writeDetails(&page, r)
	return os.WriteFile(*out, []byte(page.String()), 0o644)
}

func writeHeadline(w io.Writer, r *results) {
	fmt.Fprintln(w, "## Headline")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| comparison | input | figure | capfleet | reference | reference's figure | capfleet ÷ reference |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, sec := range r.sections {
		info := sectionInfo[sec]
		if info.headline == "" {
			continue
		}
		for _, c := range r.cases[sec] {
			self := r.capfleetTool(sec, c)
			mine, ok := r.stat(sec, c, self, info.headline)
			if !ok {
				continue
			}
			refs := 0
			for _, t := range r.tools[[2]string{sec, c}] {
				if t == self {
					continue
				}
				theirs, ok := r.stat(sec, c, t, info.headline)
				if !ok {
					continue
				}
				refs++
				ratio := "—"
				if theirs.med > 0 {
					ratio = fmt.Sprintf("**%s×**", num(mine.med/theirs.med))
				}
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", info.title, c, info.headline, mine, t, theirs, ratio)
			}
			if refs == 0 {
				fmt.Fprintf(w, "| %s | %s | %s | %s | — | — | — |\n", info.title, c, info.headline, mine)
			}
		}
	}
	fmt.Fprintln(w)
}

func writeDetails(w io.Writer, r *results) {
	fmt.Fprintln(w, "## Every figure")
	for _, sec := range r.sections {
		if sec == "go" {
			writeGo(w, r)
			continue
		}
		title := sectionInfo[sec].title
		if title == "" {
			title = sec
		}
		for _, c := range r.cases[sec] {
			sc := [2]string{sec, c}
			fmt.Fprintf(w, "\n### %s — %s\n\n", title, c)
			fmt.Fprintf(w, "| tool | %s |\n|---|%s\n", strings.Join(r.metrics[sc], " | "), strings.Repeat("---|", len(r.metrics[sc])))
			for _, t := range r.tools[sc] {
				cells := make([]string, 0, len(r.metrics[sc]))
				for _, m := range r.metrics[sc] {
					if s, ok := r.stat(sec, c, t, m); ok {
						cells = append(cells, s.String())
					} else {
						cells = append(cells, "")
					}
				}
				fmt.Fprintf(w, "| %s | %s |\n", t, strings.Join(cells, " | "))
			}
		}
	}
}

// writeGo lists the Go benchmarks one per line, their metrics (ns/op, B/op, allocs/op and the ones
// they report themselves) in one cell.
func writeGo(w io.Writer, r *results) {
	fmt.Fprintf(w, "\n### %s\n\n`go test -run '^$' -bench ... -benchmem -count N`, medians over the counts.\n\n", sectionInfo["go"].title)
	fmt.Fprintln(w, "| package | benchmark | figures |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, pkg := range r.cases["go"] {
		sc := [2]string{"go", pkg}
		for _, b := range r.tools[sc] {
			var cells []string
			for _, m := range r.metrics[sc] {
				if s, ok := r.stat("go", pkg, b, m); ok {
					cells = append(cells, s.String()+" "+m)
				}
			}
			fmt.Fprintf(w, "| %s | %s | %s |\n", pkg, b, strings.Join(cells, ", "))
		}
	}
}
