// Command capfleet is the one binary of capfleet: the operator, the workloads it runs, and the
// analyst's tools, each a subcommand.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"capfleet.dev/capfleet/kubectlplugin"
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
	// Under the name kubectl-capfleet (krew's install, or a link) the binary is `kubectl capfleet`.
	if strings.TrimSuffix(filepath.Base(os.Args[0]), ".exe") == kubectlplugin.BinaryName {
		root = kubectlplugin.NewCommand("kubectl capfleet")
	}
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "capfleet:", err)
		os.Exit(1)
	}
}
