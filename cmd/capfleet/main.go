// Command capfleet is the one binary of capfleet: the operator, the workloads it runs, and the
// analyst's tools, each a subcommand.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "capfleet",
		Short:         "Packet capture fleets on Kubernetes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, c := range subcommands() {
		root.AddCommand(c)
	}
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "capfleet:", err)
		os.Exit(1)
	}
}
