package pcapfile

const pcapngBlockSHB = 0x0a0d0d0a

func (r *Reader) openPcapng() error {
	return &FormatError{Offset: 0, Reason: "pcapng not yet supported"}
}

type pcapngState struct{}
