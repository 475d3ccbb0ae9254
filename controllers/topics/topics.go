// Package topics creates and tends the Kafka topics capfleet resources declare. It raises partitions but
// never lowers them (Kafka cannot), adopts an existing topic only when it is compatible, and deletes only
// topics it created.
package topics

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Want is a topic as a resource's spec declares it.
type Want struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	// RetentionMs is retention.ms; 0 leaves the broker's default.
	RetentionMs int64
}

// State is what exists, and whether it matches.
type State struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	RetentionMs       int64
	// Created is true when this manager created the topic.
	Created bool
	// Problem says why the topic cannot match the spec (empty when it does).
	Problem string
}

// Problems the operator reports but cannot fix.
var (
	ErrPartitionsNotLowered = errors.New("partitions not lowered")
	ErrIncompatible         = errors.New("existing topic incompatible")
)

// Manager talks to one Kafka cluster's admin API.
type Manager struct {
	adm *kadm.Client

	// created remembers the topics this process created. The resource's status records them too, but a
	// reconcile may read a cached resource from before that status was written.
	mu      sync.Mutex
	created map[string]bool
}

// New wraps a franz-go client; the caller keeps ownership of it.
func New(cl *kgo.Client) *Manager {
	return &Manager{adm: kadm.NewClient(cl), created: map[string]bool{}}
}

func (m *Manager) createdHere(topic string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.created[topic]
}

func (m *Manager) remember(topic string, created bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if created {
		m.created[topic] = true
	} else {
		delete(m.created, topic)
	}
}

// Ensure makes the topic exist as wanted as far as Kafka allows. A topic that exists but cannot match
// (fewer partitions wanted, another replication factor) is left alone, with the reason in State.Problem.
func (m *Manager) Ensure(ctx context.Context, w Want) (State, error) {
	st := State{Name: w.Name, Created: m.createdHere(w.Name)}
	details, err := m.adm.ListTopics(ctx, w.Name)
	if err != nil {
		return st, fmt.Errorf("describe topic %s: %w", w.Name, err)
	}
	d, ok := details[w.Name]
	if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return m.create(ctx, w)
	}
	if d.Err != nil {
		return st, fmt.Errorf("describe topic %s: %w", w.Name, d.Err)
	}
	st.Partitions = int32(len(d.Partitions))
	st.ReplicationFactor = int16(d.Partitions.NumReplicas())
	if st.ReplicationFactor != w.ReplicationFactor {
		st.Problem = fmt.Sprintf("%v: topic %s exists with replication factor %d, spec asks %d; left alone",
			ErrIncompatible, w.Name, st.ReplicationFactor, w.ReplicationFactor)
		st.RetentionMs, err = m.retention(ctx, w.Name)
		return st, err
	}
	switch {
	case st.Partitions < w.Partitions:
		resp, err := m.adm.UpdatePartitions(ctx, int(w.Partitions), w.Name)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return st, fmt.Errorf("raise partitions of %s to %d: %w", w.Name, w.Partitions, err)
		}
		st.Partitions = w.Partitions
	case st.Partitions > w.Partitions:
		st.Problem = fmt.Sprintf("%v: topic %s has %d partitions, spec asks %d; Kafka cannot lower partitions",
			ErrPartitionsNotLowered, w.Name, st.Partitions, w.Partitions)
	}
	if st.RetentionMs, err = m.retention(ctx, w.Name); err != nil {
		return st, err
	}
	if w.RetentionMs > 0 && st.RetentionMs != w.RetentionMs {
		v := strconv.FormatInt(w.RetentionMs, 10)
		resp, err := m.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &v}}, w.Name)
		if err == nil {
			_, err = resp.On(w.Name, nil)
		}
		if err != nil {
			return st, fmt.Errorf("set retention.ms of %s: %w", w.Name, err)
		}
		st.RetentionMs = w.RetentionMs
	}
	return st, nil
}

// CreateIfMissing creates the topic as wanted when it does not exist, and leaves an existing one exactly as
// it is: for a writer that does not own the topic it writes to (another resource may tend it). It reports
// whether it created the topic.
func (m *Manager) CreateIfMissing(ctx context.Context, w Want) (bool, error) {
	details, err := m.adm.ListTopics(ctx, w.Name)
	if err != nil {
		return false, fmt.Errorf("describe topic %s: %w", w.Name, err)
	}
	if d, ok := details[w.Name]; ok && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		if d.Err != nil {
			return false, fmt.Errorf("describe topic %s: %w", w.Name, d.Err)
		}
		return false, nil
	}
	configs := map[string]*string{}
	if w.RetentionMs > 0 {
		v := strconv.FormatInt(w.RetentionMs, 10)
		configs["retention.ms"] = &v
	}
	_, err = m.adm.CreateTopic(ctx, w.Partitions, w.ReplicationFactor, configs, w.Name)
	switch {
	case errors.Is(err, kerr.TopicAlreadyExists):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("create topic %s: %w", w.Name, err)
	}
	return true, nil
}

func (m *Manager) create(ctx context.Context, w Want) (State, error) {
	configs := map[string]*string{}
	if w.RetentionMs > 0 {
		v := strconv.FormatInt(w.RetentionMs, 10)
		configs["retention.ms"] = &v
	}
	_, err := m.adm.CreateTopic(ctx, w.Partitions, w.ReplicationFactor, configs, w.Name)
	if errors.Is(err, kerr.TopicAlreadyExists) {
		// Someone created it between our look and our create: treat it as existing.
		return m.Ensure(ctx, w)
	}
	if err != nil {
		return State{Name: w.Name}, fmt.Errorf("create topic %s: %w", w.Name, err)
	}
	m.remember(w.Name, true)
	st := State{Name: w.Name, Partitions: w.Partitions, ReplicationFactor: w.ReplicationFactor, Created: true}
	// A status claiming the broker's default retention because the read failed would be wrong: the error
	// makes the reconcile retry, and the next look finds the topic and reads it again.
	st.RetentionMs, err = m.retention(ctx, w.Name)
	return st, err
}

// retention reads the topic's effective retention.ms.
func (m *Manager) retention(ctx context.Context, topic string) (int64, error) {
	rcs, err := m.adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("describe configs of %s: %w", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		return 0, fmt.Errorf("describe configs of %s: %w", topic, err)
	}
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" && c.Value != nil {
			return strconv.ParseInt(*c.Value, 10, 64)
		}
	}
	return 0, nil
}

// Delete removes a topic; one already gone is not an error.
func (m *Manager) Delete(ctx context.Context, topic string) error {
	_, err := m.adm.DeleteTopic(ctx, topic)
	if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("delete topic %s: %w", topic, err)
	}
	m.remember(topic, false)
	return nil
}
