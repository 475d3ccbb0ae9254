package pipeline

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type (
	kmsgOffsetCommitRequest  = kmsg.OffsetCommitRequest
	kmsgOffsetCommitResponse = kmsg.OffsetCommitResponse
)

// commitError folds the request error and the per-partition error codes of an offset commit into one.
func commitError(resp *kmsg.OffsetCommitResponse, err error) error {
	if err != nil {
		return err
	}
	if resp == nil {
		return nil
	}
	for _, t := range resp.Topics {
		for _, pt := range t.Partitions {
			if e := kerr.ErrorForCode(pt.ErrorCode); e != nil {
				return fmt.Errorf("commit %s/%d: %w", t.Topic, pt.Partition, e)
			}
		}
	}
	return nil
}
