package main

import (
	"github.com/spf13/cobra"

	"capfleet.dev/capfleet/kubectlplugin"
	"capfleet.dev/capfleet/manager"
	"capfleet.dev/capfleet/netflow/nfcmd"
	"capfleet.dev/capfleet/pcaptool"
	"capfleet.dev/capfleet/pcaptool/decodecmd"
	"capfleet.dev/capfleet/processor/processcmd"
	"capfleet.dev/capfleet/query"
	"capfleet.dev/capfleet/replay"
	"capfleet.dev/capfleet/sensor"
	"capfleet.dev/capfleet/ui"
)

// subcommands lists every face of the binary. Each lives in the package that does its work.
func subcommands() []*cobra.Command {
	return []*cobra.Command{
		manager.NewCommand(),
		kubectlplugin.NewCommand("kubectl"),
		sensor.NewCommand(),
		replay.NewCommand(),
		processcmd.NewCommand(),
		query.NewCommand(),
		nfcmd.NewCollectCommand(),
		pcaptool.NewCommand(decodecmd.NewDecodeCommand(), decodecmd.NewFlowsCommand(), replay.NewPcapCommand(), nfcmd.NewPcapCommand()),
		ui.NewCommand(),
	}
}
