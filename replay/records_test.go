package replay

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"capfleet.dev/capfleet/internal/kafkatest"
)

// A buffer far smaller than the records of the run (so that Send waits for the broker over and
// over) still puts exactly the file's packets into the topic.
func TestReplayIntoTopicThroughASmallBuffer(t *testing.T) {
	cfg := kafkatest.Plain(t)
	const partitions, loops = 3, 3
	path := sharedPcap(t, "ndpi/teamviewer.pcap")
	file := readFile(t, path)
	topic := kafkatest.NewTopic(t, cfg, partitions)
	ctx := context.Background()
	defer func(records, bytes int) { topicBufferRecords, topicBufferBytes = records, bytes }(topicBufferRecords, topicBufferBytes)
	topicBufferRecords, topicBufferBytes = 32, 128<<10
	tg, err := OpenTopic(ctx, cfg, topic, TopicOptions{Node: "test", Interface: "replay"})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	r, err := New(Config{Open: OpenFile(path), Pace: Pace{Mode: TopSpeed}, Loops: loops, Target: tg})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Run(ctx)
	if err != nil || sum.PacketsSent != uint64(loops*len(file)) {
		t.Fatalf("sent %d of %d: %v\n%s", sum.PacketsSent, loops*len(file), err, sum)
	}
	if bytes, records := tg.prod.Held(); bytes != 0 || records != 0 {
		t.Fatalf("still held after the run: %d bytes, %d records", bytes, records)
	}
	checkTopicHolds(t, cfg, topic, partitions, file, loops)
	if !strings.Contains(sum.String(), fmt.Sprintf("Loops completed:           %d", loops)) {
		t.Fatalf("summary:\n%s", sum)
	}
}
