package main

import (
	"github.com/spf13/cobra"

	"capfleet.dev/capfleet/manager"
)

// subcommands lists every face of the binary. Each lives in the package that does its work.
func subcommands() []*cobra.Command {
	return []*cobra.Command{
		manager.NewCommand(),
	}
}
