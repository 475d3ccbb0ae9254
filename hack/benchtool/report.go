package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// sectionInfo names a comparison and the figure its ratios are taken on (higher is better for all);
// also is a second headline figure, in its own rows.
var sectionInfo = map[string]struct{ title, headline, also string }{
	"read":         {title: "Read a capture file", headline: "MB/s"},
	"decode":       {title: "Decode to fields", headline: "Mpkt/s"},
	"filter":       {title: "Display filter (-Y)", headline: "Mpkt/s"},
	"flows":        {title: "Flows from a file", headline: "Mpkt/s"},
	"replay-veth":  {title: "Replay onto a veth", headline: "Mpkt/s"},
	"replay-kafka": {title: "Replay into Kafka", headline: "Mpkt/s"},
	"capture":      {title: "Capture at line rate", headline: "in topic %", also: "captured %"},
	"e2e":          {title: "End to end", headline: "Mpkt/s"},
	"flow-query":   {title: "One flow's packets (query packets --flow)", headline: ""},
	"fleet":        {title: "Status at fleet scale", headline: ""},
	"go":           {title: "Go benchmarks", headline: ""},
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
		for _, c := range r.cases[sec] {
			for _, fig := range []string{info.headline, info.also} {
				if fig != "" {
					headlineRows(w, r, sec, c, fig)
				}
			}
		}
	}
	fmt.Fprintln(w)
}

// headlineRows compares capfleet's figure with each reference's that has it, or shows it alone.
func headlineRows(w io.Writer, r *results, sec, c, fig string) {
	title := sectionInfo[sec].title
	self := r.capfleetTool(sec, c)
	mine, ok := r.stat(sec, c, self, fig)
	if !ok {
		return
	}
	refs := 0
	for _, t := range r.tools[[2]string{sec, c}] {
		if t == self {
			continue
		}
		theirs, ok := r.stat(sec, c, t, fig)
		if !ok {
			continue
		}
		refs++
		ratio := "—"
		if theirs.med > 0 {
			ratio = fmt.Sprintf("**%s×**", num(mine.med/theirs.med))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", title, c, fig, mine, t, theirs, ratio)
	}
	if refs == 0 {
		fmt.Fprintf(w, "| %s | %s | %s | %s | — | — | — |\n", title, c, fig, mine)
	}
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
