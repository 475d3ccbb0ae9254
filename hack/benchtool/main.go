// Command benchtool is hack/bench.sh's helper: what the shell cannot do well.
//
//	benchtool produce --file F --topic T [kafka flags]   the franz-go producer ceiling for F's packets
//	benchtool topic create|delete|count NAME [--partitions N] [kafka flags]
//	benchtool group delete NAME [kafka flags]
//	benchtool keyspace drop cfbench_NAME [cassandra flags]
//	benchtool retime [--start T] [--step D] IN OUT        IN's packets stamped as a live sensor would (retime.go)
//	benchtool gobench SECTION < `go test -bench` output  >> results.tsv
//	benchtool report --results R --machine M --out OUT   the table and docs/benchmarks.md
//
// results.tsv has one measurement per line: section, case, tool, metric, value (tab-separated).
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "produce":
		err = produce(args)
	case "topic":
		err = topic(args)
	case "gobench":
		err = gobench(args, os.Stdin, os.Stdout)
	case "group":
		err = group(args)
	case "keyspace":
		err = keyspace(args)
	case "report":
		err = report(args)
	case "retime":
		err = retime(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchtool produce|topic|group|keyspace|retime|gobench|report ... (see hack/benchtool/main.go)")
	os.Exit(2)
}
