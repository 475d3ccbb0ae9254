package main

// Why capfleet falls short of an aim, from what the benchmarks and profiles showed. Printed only
// under an aim this run did not meet; keep them in step with the code they describe.
const (
	whyRead        = `TODO`
	whyDecode      = `TODO`
	whyFlows       = `TODO`
	whyReplayVeth  = `TODO`
	whyReplayKafka = `TODO`
	whyCapture     = `TODO`
	whyE2E         = `TODO`
	whyFleet       = `TODO`
)
