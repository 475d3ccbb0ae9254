package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PacketPipelineSpec says where packets come from, how they are processed and where results are stored.
type PacketPipelineSpec struct {
	// Source of the packet records: a CaptureSensor's topic, or a topic by name. Exactly one.
	Source PipelineSource `json:"source"`

	// Replicas of the processor; together they form one consumer group.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Replicas *int32 `json:"replicas,omitempty"`

	// ConsumerGroup of the processors. Empty means "capfleet.<namespace>.<name>".
	// +optional
	// +kubebuilder:validation:MaxLength=249
	ConsumerGroup string `json:"consumerGroup,omitempty"`

	// Filter is a BPF filter in tcpdump syntax run on each packet; packets it rejects are counted and skipped.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Filter string `json:"filter,omitempty"`

	// DisplayFilter is a Wireshark display filter (tshark -Y syntax, e.g. "ip.addr == 10.0.0.0/8 &&
	// tcp.flags.syn == 1") run on each decoded packet after Filter; packets it rejects are counted as
	// filtered and neither stored nor aggregated into flows. frame.number is the record's offset in its
	// Kafka partition plus one. An invalid filter stalls the resource with the parser's message.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	DisplayFilter string `json:"displayFilter,omitempty"`

	// Flows sets how packets are aggregated into flows.
	// +optional
	// +kubebuilder:default={}
	Flows FlowSettings `json:"flows,omitempty"`

	// Traffic sets the counters the processor keeps per window of packet time besides flows: the
	// traffic curve of `capfleet query traffic` and the edge rollups `capfleet query graph` reads for
	// long ranges. Both need the Cassandra sink.
	// +optional
	Traffic *TrafficSettings `json:"traffic,omitempty"`

	// Sinks the processor writes to.
	// +kubebuilder:validation:XValidation:rule="has(self.cassandra) || has(self.kafka) || has(self.ipfix) || has(self.packetRecords)",message="sinks: set at least one of cassandra, kafka, ipfix, packetRecords"
	// +kubebuilder:validation:XValidation:rule="!has(self.kafka) || has(self.cassandra)",message="sinks.kafka needs sinks.cassandra too: open flows are checkpointed in Cassandra so a restart neither loses nor splits them"
	// +kubebuilder:validation:XValidation:rule="!has(self.ipfix) || has(self.cassandra)",message="sinks.ipfix needs sinks.cassandra too: open flows are checkpointed in Cassandra so a restart neither loses nor splits them"
	Sinks PipelineSinks `json:"sinks"`

	// Kafka connection for the source and the Kafka sink; empty fields take the operator's defaults.
	// +optional
	Kafka *KafkaConnection `json:"kafka,omitempty"`

	// TopicDeletionPolicy: Retain keeps the pipeline's topics when it is deleted, Delete removes those the operator created.
	// +optional
	// +kubebuilder:default=Retain
	TopicDeletionPolicy DeletionPolicy `json:"topicDeletionPolicy,omitempty"`

	WorkloadSettings `json:",inline"`
}

// PipelineSource is where a pipeline reads packet records.
// +kubebuilder:validation:XValidation:rule="has(self.sensor) != has(self.topic)",message="source: set exactly one of sensor, topic"
type PipelineSource struct {
	// Sensor is the name of a CaptureSensor in the same namespace whose topic is read.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Sensor string `json:"sensor,omitempty"`
	// Topic is a packets topic read by name.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]+$`
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..'",message="topic: Kafka refuses the topic names . and .."
	Topic string `json:"topic,omitempty"`
}

// FlowSettings bound and time out the flow table.
type FlowSettings struct {
	// IdleTimeout, when set, ends a flow of any protocol that saw no packet for this long. Unset,
	// flows end after Zeek's inactivity timeouts: 5 minutes for TCP, 1 minute for UDP, ICMP and
	// other protocols (and a TCP connection 5 s after its close, reset or unanswered SYN).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="idleTimeout must be a positive duration, e.g. 60s"
	IdleTimeout *metav1.Duration `json:"idleTimeout,omitempty"`
	// ActiveTimeout reports a long flow at least this often.
	// +optional
	// +kubebuilder:default="30m"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="activeTimeout must be a positive duration, e.g. 30m"
	ActiveTimeout *metav1.Duration `json:"activeTimeout,omitempty"`
	// MaxFlows bounds the flow table per processor; the oldest flows are evicted, and counted, beyond it.
	// +optional
	// +kubebuilder:default=1000000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000000
	MaxFlows int32 `json:"maxFlows,omitempty"`
	// Filter is a display filter over flow fields, named as Zeek's conn.log names them (the language of
	// `capfleet query flows -Y`, e.g. 'conn_state != "S0" && flow.bytes > 1000'): the flow records it
	// rejects are counted as filtered flows and neither stored nor published. Each record is judged on
	// its own figures (an open flow's running totals, then its end). An invalid filter stalls the
	// resource with the parser's message.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Filter string `json:"filter,omitempty"`
	// Features are optional feature sets computed on every flow in one pass, without keeping packets.
	// "cic" adds CICFlowMeter's columns, named and measured as in the CIC-IDS2017 data set's CSVs
	// (times in microseconds, lengths of TCP and UDP payloads, forward being the direction of a
	// flow's first packet). The flow records on the flows topic carry them under the key "cic", and
	// Cassandra's flow_features table stores them by flow uid. They cost about 700 bytes of memory per
	// open flow on top of the flow itself.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1
	Features []FlowFeature `json:"features,omitempty"`
}

// FlowFeature names an optional feature set of flows.
// +kubebuilder:validation:Enum=cic
type FlowFeature string

// FlowFeatureCIC is CICFlowMeter's columns, as the CIC-IDS2017 data set names them.
const FlowFeatureCIC FlowFeature = "cic"

// TrafficSettings size the windows of the traffic counters and edge rollups. A window must be a whole
// number of milliseconds that divides an hour (the processor refuses others); 0s turns the counter off.
type TrafficSettings struct {
	// Step is the width of the traffic counters' windows (packets, bytes, by IP protocol and direction,
	// filtered and undecodable packets, per sensor); queries sum them into multiples of it.
	// +optional
	// +kubebuilder:default="1s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1h')",message="step must be between 0s (off) and 1h"
	Step *metav1.Duration `json:"step,omitempty"`
	// EdgeWindow is the width of the edge rollups' windows (packets, IP bytes and flows per pair of hosts).
	// +optional
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1h')",message="edgeWindow must be between 0s (off) and 1h"
	EdgeWindow *metav1.Duration `json:"edgeWindow,omitempty"`
	// TTL is how long the counters are kept; 0 keeps them forever.
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="ttl must not be negative (0 keeps the counters forever)"
	TTL *metav1.Duration `json:"ttl,omitempty"`
}

// PipelineSinks are the outputs of a pipeline.
type PipelineSinks struct {
	// Cassandra stores packets and/or flows.
	// +optional
	Cassandra *CassandraSink `json:"cassandra,omitempty"`
	// Kafka publishes flow records as JSON.
	// +optional
	Kafka *KafkaFlowSink `json:"kafka,omitempty"`
	// IPFIX exports closed flows as IPFIX (RFC 7011) over UDP, as a router exports NetFlow, to
	// collectors such as nfdump's nfcapd or ntopng. Each flow is one record per direction that carried
	// packets. UDP export is lossy: a collector that is away misses flows (its sequence numbers say how
	// many) and never holds the pipeline back.
	// +optional
	IPFIX *IPFIXFlowSink `json:"ipfix,omitempty"`
	// PacketRecords publishes one JSON record per packet the filters keep, with its IP, IPv6, TCP and
	// UDP header fields under tshark's field names (ip.ttl, tcp.checksum, udp.length, ...), for
	// consumers such as Spark or Elasticsearch that want parsed packets rather than frames. Records
	// are keyed by the packet's source partition and offset, so copies a restart repeats can be dropped.
	// +optional
	PacketRecords *PacketRecordsSink `json:"packetRecords,omitempty"`
}

// PacketRecordsSink publishes decoded packet records to a Kafka topic.
type PacketRecordsSink struct {
	// Topic for packet records (default: NAMESPACE.NAME.records).
	// +optional
	// +kubebuilder:default={}
	Topic TopicSpec `json:"topic,omitempty"`
}

// IPFIXFlowSink sends flow records to IPFIX collectors.
type IPFIXFlowSink struct {
	// Collectors are the host:port (UDP) addresses to send every message to.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=261
	// +kubebuilder:validation:items:Pattern=`^(\[[0-9a-fA-F:.]+\]|[^\s:\[\],]+):[0-9]{1,5}$`
	// +listType=set
	Collectors []string `json:"collectors"`
	// ObservationDomain is the IPFIX observation domain ID the messages carry.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	ObservationDomain int64 `json:"observationDomain,omitempty"`
}

// CassandraSink stores packets and flows in Cassandra.
// +kubebuilder:validation:XValidation:rule="self.packets || self.flows",message="cassandra: store packets, flows or both"
type CassandraSink struct {
	// Packets stores every raw packet.
	// +optional
	// +kubebuilder:default=false
	Packets bool `json:"packets"`
	// Flows stores flow records.
	// +optional
	// +kubebuilder:default=true
	Flows bool `json:"flows"`
	// PacketTTL is how long raw packets are kept; 0 keeps them forever.
	// +optional
	// +kubebuilder:default="168h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="packetTTL must not be negative (0 keeps packets forever)"
	PacketTTL *metav1.Duration `json:"packetTTL,omitempty"`
	// FlowTTL is how long flow records are kept; 0 keeps them forever.
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="flowTTL must not be negative (0 keeps flows forever)"
	FlowTTL *metav1.Duration `json:"flowTTL,omitempty"`
	// Keyspace the tables live in; created if missing. Cassandra's own keyspaces (system, system_auth,
	// system_schema, system_distributed, system_traces, system_views, system_virtual_schema) are refused.
	// +optional
	// +kubebuilder:default=capfleet
	// +kubebuilder:validation:Pattern=`^[a-zA-Z][a-zA-Z0-9_]{0,47}$`
	// +kubebuilder:validation:XValidation:rule="!(self.lowerAscii() in ['system', 'system_auth', 'system_schema', 'system_distributed', 'system_traces', 'system_views', 'system_virtual_schema'])",messageExpression="'keyspace ' + self + ' is a Cassandra system keyspace; choose another name, e.g. capfleet'"
	Keyspace string `json:"keyspace,omitempty"`
	// ReplicationFactor of the keyspace when it is created (SimpleStrategy).
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=32
	ReplicationFactor int32 `json:"replicationFactor,omitempty"`
	// Connection to Cassandra; empty fields take the operator's defaults.
	// +optional
	Connection *CassandraConnection `json:"connection,omitempty"`
}

// KafkaFlowSink publishes flow records to a topic.
type KafkaFlowSink struct {
	// Topic for flow records.
	// +optional
	// +kubebuilder:default={}
	Topic TopicSpec `json:"topic,omitempty"`
}

// PacketPipelineStatus reports the pipeline's throughput, lag and losses.
type PacketPipelineStatus struct {
	CommonStatus `json:",inline"`

	// MetricsPort is the node port the processors serve Prometheus /metrics on when they run in their
	// node's network (the operator's --workload-host-network): the operator gives each such pipeline, and
	// each CaptureSensor, a pair of its own, so several share a node. 0 when they have a network of their own.
	// +optional
	MetricsPort int32 `json:"metricsPort,omitempty"`
	// HealthPort is the node port of the processors' /healthz and /readyz then.
	// +optional
	HealthPort int32 `json:"healthPort,omitempty"`

	// Replicas of the processor that exist.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReadyReplicas of the processor.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// RecordsInPerSecond read from the source topic.
	// +optional
	RecordsInPerSecond int64 `json:"recordsInPerSecond,omitempty"`
	// RecordsOutPerSecond written to the sinks.
	// +optional
	RecordsOutPerSecond int64 `json:"recordsOutPerSecond,omitempty"`
	// ConsumerLag is the records not yet read, over all partitions.
	// +optional
	ConsumerLag int64 `json:"consumerLag,omitempty"`
	// DecodeErrors is packets no decoder understood.
	// +optional
	DecodeErrors int64 `json:"decodeErrors,omitempty"`
	// Filtered is packets the filter rejected.
	// +optional
	Filtered int64 `json:"filtered,omitempty"`
	// SinkErrors is writes a sink refused (each retried).
	// +optional
	SinkErrors int64 `json:"sinkErrors,omitempty"`
	// Errors is decode plus sink errors, for kubectl get.
	// +optional
	Errors int64 `json:"errors,omitempty"`
	// ActiveFlows in the processors' tables.
	// +optional
	ActiveFlows int64 `json:"activeFlows,omitempty"`
	// Drops is flows evicted early because a table was full.
	// +optional
	Drops int64 `json:"drops,omitempty"`
	// SourceTopic the pipeline reads.
	// +optional
	SourceTopic string `json:"sourceTopic,omitempty"`
	// Topics the operator tends for this pipeline (its flows topic), as they exist in Kafka.
	// +optional
	// +listType=atomic
	Topics []TopicStatus `json:"topics,omitempty"`
	// Deployment that runs the processors.
	// +optional
	Deployment string `json:"deployment,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas
// +kubebuilder:resource:shortName=ppipe;pp,categories=capfleet
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it becomes the app.kubernetes.io/instance label of the workload's pods"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Records/s",type=integer,JSONPath=`.status.recordsInPerSecond`
// +kubebuilder:printcolumn:name="Lag",type=integer,JSONPath=`.status.consumerLag`
// +kubebuilder:printcolumn:name="Errors",type=integer,JSONPath=`.status.errors`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1,description="Why the resource is or is not Ready"
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1,description="What the Ready condition says"

// PacketPipeline decodes a packets topic into flows and stores packets and flows.
type PacketPipeline struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PacketPipelineSpec   `json:"spec"`
	Status PacketPipelineStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// PacketPipelineList is a list of PacketPipelines.
type PacketPipelineList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PacketPipeline `json:"items"`
}

func init() {
	SchemeBuilder.Register(&PacketPipeline{}, &PacketPipelineList{})
}
