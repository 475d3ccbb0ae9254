package sensor

import (
	"fmt"
	"os"
	"strconv"
)

// MemoryLimitEnv is where the operator hands the sensor its container's memory limit in bytes (the
// Downward API's limits.memory): the rings are locked kernel memory charged to the pod, and a sensor
// that maps more than its limit is OOM-killed at start, again and again, with nothing said.
const MemoryLimitEnv = "MEMORY_LIMIT"

// processReserve is what the sensor needs beside its rings and its Kafka buffer (--buffer-mb): the Go
// runtime and code, franz-go's batches in flight, the HTTP servers.
const processReserve = 96 << 20

// memoryLimitFromEnv is MEMORY_LIMIT, 0 when unset or unreadable (no limit known).
func memoryLimitFromEnv() int64 {
	n, err := strconv.ParseInt(os.Getenv(MemoryLimitEnv), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// ringShare is the bytes the rings of one interface may take under the memory limit, -1 when no limit
// is known.
func (c *Config) ringShare() int64 {
	if c.MemoryLimit <= 0 {
		return -1
	}
	return max(c.MemoryLimit-int64(c.BufferMB)<<20-processReserve, 0) / int64(len(c.Interfaces))
}

// fitRings checks that an interface's rings (rings of blocks blocks of blockSize bytes) fit its share of
// the budget (-1: no limit). Rings sized from the interface's speed (auto) shrink to fit, down to two
// blocks; sizes the spec gave are refused with what would fit, so a CR that makes no sense says so
// rather than being OOM-killed at every start.
func fitRings(share int64, rings, blockSize, blocks int, auto bool) (int, error) {
	need := int64(rings) * int64(blocks) * int64(blockSize)
	if share < 0 || need <= share {
		return blocks, nil
	}
	fit := share / (int64(rings) * int64(blockSize))
	if auto && fit >= 2 {
		return int(fit), nil
	}
	return 0, fmt.Errorf("%d ring(s) of %d blocks of %d KiB need %d MiB, but the interface's share of the memory limit is %d MiB "+
		"(what is left after --buffer-mb and %d MiB for the process, split across the interfaces): lower --ring-blocks "+
		"(spec.ring.blocks) or --fanout-workers (spec.ring.fanoutWorkers), or raise the memory limit (spec.resources)",
		rings, blocks, blockSize>>10, need>>20, max(share, 0)>>20, processReserve>>20)
}

// goMemoryLimit is the soft limit for Go's heap under the container's limit, once the rings (which the
// runtime does not see) are taken off: the collector works harder as the heap nears it instead of the
// kernel killing the sensor. 0 when no limit is known.
func goMemoryLimit(limit, ringBytes int64) int64 {
	if limit <= 0 {
		return 0
	}
	return max(limit-ringBytes-32<<20, 32<<20)
}
