// Package pcaptool is the `capfleet pcap` command group: the analyst's tools for capture files.
package pcaptool

import "github.com/spf13/cobra"

// NewCommand returns the `pcap` command with its `info` subcommand and any extra subcommands given, so
// packages that add tools for capture files (decode, flows, replay) plug in without this package
// importing them:
//
//	pcaptool.NewCommand(decode.NewCommand(), flows.NewCommand())
func NewCommand(extra ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   "pcap",
		Short: "Tools for capture files (pcap, pcapng, optionally gzip-compressed)",
	}
	c.AddCommand(newInfoCommand())
	c.AddCommand(extra...)
	return c
}
