package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CaptureSensorSpec says where to capture, what, and where the packets go.
// A TPACKET_V3 block holds whole packets only, with a 128-byte header each: a block smaller than one packet
// of snapLength would make every sensor exit at start, so admission refuses it.
// +kubebuilder:validation:XValidation:rule="!has(self.ring) || !has(self.ring.blockSizeKiB) || !has(self.snapLength) || self.ring.blockSizeKiB * 1024 >= self.snapLength + 128",message="ring.blockSizeKiB must hold one packet of snapLength bytes plus a 128-byte header (at least 260 for the default snapLength 262144): raise it or lower snapLength",fieldPath=".ring.blockSizeKiB"
type CaptureSensorSpec struct {
	// Interfaces to capture on, on every selected node, by name; or "any" alone, which captures every
	// interface of the node as tcpdump -i any does: each packet framed as Linux cooked v2 (link type 276,
	// naming its interface), the filter run by the sensor rather than the kernel, VLAN tags not put back.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=15
	// +kubebuilder:validation:items:Pattern=`^[a-zA-Z0-9._@-]+$`
	// +kubebuilder:validation:XValidation:rule="!self.exists(i, i == 'any') || self.size() == 1",message="interfaces: \"any\" already captures every interface of the node; list it alone"
	// +listType=set
	Interfaces []string `json:"interfaces"`

	// Filter is a BPF filter in tcpdump syntax, compiled and attached in the kernel. Empty captures everything.
	// The operator compiles it before rolling anything out; an invalid filter stalls the resource.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Filter string `json:"filter,omitempty"`

	// SnapLength is the most bytes kept of each packet.
	// +optional
	// +kubebuilder:default=262144
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=262144
	SnapLength int32 `json:"snapLength,omitempty"`

	// SampleRate keeps one packet of every SampleRate; 1 keeps all.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	SampleRate int32 `json:"sampleRate,omitempty"`

	// Ring sizes the AF_PACKET ring buffer each interface captures into.
	// +optional
	// +kubebuilder:default={}
	Ring RingSpec `json:"ring,omitempty"`

	// BufferPackets bounds the packets held for Kafka. When it is full the sensor waits for Kafka while the
	// ring holds what arrives (its overflow counts as kernel-ring drops); only when Kafka frees nothing for
	// half a second does the sensor shed, counted as sensor-queue drops.
	// +optional
	// +kubebuilder:default=50000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000000
	BufferPackets int32 `json:"bufferPackets,omitempty"`

	// Topic the sensor writes packet records to.
	// +optional
	// +kubebuilder:default={}
	Topic TopicSpec `json:"topic,omitempty"`

	// Kafka connection; empty fields take the operator's defaults.
	// +optional
	Kafka *KafkaConnection `json:"kafka,omitempty"`

	// DropThresholdPercent marks the sensor not Ready (reason Degraded) when drops exceed this share of packets.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	DropThresholdPercent int32 `json:"dropThresholdPercent,omitempty"`

	// TopicDeletionPolicy: Retain keeps the topic when the sensor is deleted, Delete removes it if the operator created it.
	// +optional
	// +kubebuilder:default=Retain
	TopicDeletionPolicy DeletionPolicy `json:"topicDeletionPolicy,omitempty"`

	WorkloadSettings `json:",inline"`
}

// RingSpec sizes a TPACKET_V3 ring and spreads capture across cores.
// +kubebuilder:validation:XValidation:rule="!has(self.blockSizeKiB) || self.blockSizeKiB % 4 == 0",message="ring.blockSizeKiB must be a multiple of 4 (the page size)"
type RingSpec struct {
	// BlockSizeKiB is the size of one ring block in KiB. The sensor wakes once a block is full (or
	// at its timeout): larger blocks mean fewer wake-ups under load, smaller ones finer-grained rings.
	// Unset, the sensor sizes it with the ring: a fifth of a ring sized from the interface's speed,
	// 1 to 4 MiB, or 1 MiB when blocks is set.
	// +optional
	// +kubebuilder:validation:Minimum=4
	// +kubebuilder:validation:Maximum=65536
	BlockSizeKiB int32 `json:"blockSizeKiB,omitempty"`

	// Blocks is the number of blocks in the ring; unset or 0 sizes the ring from the interface's speed
	// (16 ms of line rate, scaled down when snapLength is below a full frame, 8 to 64 MiB per interface).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4096
	Blocks int32 `json:"blocks,omitempty"`

	// FanoutGroup, when not zero, spreads packets of one interface across several sockets (PACKET_FANOUT).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	FanoutGroup int32 `json:"fanoutGroup,omitempty"`

	// FanoutWorkers is how many rings, each read by its own goroutine, an interface gets when FanoutGroup is
	// set: the kernel hashes flows across them, so a flow stays on one. Unset or 0: one per CPU of the node.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=256
	FanoutWorkers int32 `json:"fanoutWorkers,omitempty"`
}

// Drops counts packets lost, split by where they were lost.
type Drops struct {
	// KernelRing: packets the kernel dropped because the capture ring was full.
	KernelRing int64 `json:"kernelRing"`
	// Interface: packets the network interface dropped.
	Interface int64 `json:"interface"`
	// SensorQueue: packets the sensor shed because its Kafka buffer was full.
	SensorQueue int64 `json:"sensorQueue"`
	// KafkaProduce: packets Kafka did not accept.
	KafkaProduce int64 `json:"kafkaProduce"`
	// Total of all causes.
	Total int64 `json:"total"`
}

// NodeCaptureStatus is one node's share of a sensor's traffic.
type NodeCaptureStatus struct {
	// Node name.
	Node string `json:"node"`
	// PacketsPerSecond captured on this node.
	PacketsPerSecond int64 `json:"packetsPerSecond"`
	// BytesPerSecond captured on this node.
	BytesPerSecond int64 `json:"bytesPerSecond"`
	// Drops on this node.
	Drops Drops `json:"drops"`
	// LastHeartbeat from this node's sensor.
	// +optional
	LastHeartbeat *metav1.Time `json:"lastHeartbeat,omitempty"`
}

// CaptureSensorStatus reports how the sensors run and how much they capture and lose.
type CaptureSensorStatus struct {
	CommonStatus `json:",inline"`

	// NodesDesired is the number of nodes that should run a sensor.
	// +optional
	NodesDesired int32 `json:"nodesDesired,omitempty"`
	// NodesReady is the number of nodes whose sensor is ready.
	// +optional
	NodesReady int32 `json:"nodesReady,omitempty"`
	// Nodes is "ready/desired", for kubectl get.
	// +optional
	Nodes string `json:"nodes,omitempty"`
	// PacketsPerSecond captured by all nodes.
	// +optional
	PacketsPerSecond int64 `json:"packetsPerSecond,omitempty"`
	// BytesPerSecond captured by all nodes.
	// +optional
	BytesPerSecond int64 `json:"bytesPerSecond,omitempty"`
	// Drops by cause, over all nodes, since the sensors started.
	// +optional
	Drops *Drops `json:"drops,omitempty"`
	// DropPercent is drops as a share of packets seen, e.g. "0.12%".
	// +optional
	DropPercent string `json:"dropPercent,omitempty"`
	// PerNode lists the nodes, worst drop ratio first, at most 20.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	PerNode []NodeCaptureStatus `json:"perNode,omitempty"`
	// Topic the sensors write to.
	// +optional
	Topic string `json:"topic,omitempty"`
	// Topics the operator tends for this sensor, as they exist in Kafka.
	// +optional
	// +listType=atomic
	Topics []TopicStatus `json:"topics,omitempty"`
	// DaemonSet that runs the sensors.
	// +optional
	DaemonSet string `json:"daemonSet,omitempty"`
	// MetricsPort is the node port the sensors serve Prometheus /metrics on. Sensors share their node's
	// network, so the operator gives each CaptureSensor its own pair of ports, and several run on one node.
	// +optional
	MetricsPort int32 `json:"metricsPort,omitempty"`
	// HealthPort is the node port the sensors serve /healthz and /readyz on, for the kubelet's probes.
	// +optional
	HealthPort int32 `json:"healthPort,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=csensor,categories=capfleet
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it becomes the app.kubernetes.io/instance label of the workload's pods"
// +kubebuilder:printcolumn:name="Nodes",type=string,JSONPath=`.status.nodes`,description="Nodes ready/desired"
// +kubebuilder:printcolumn:name="Packets/s",type=integer,JSONPath=`.status.packetsPerSecond`
// +kubebuilder:printcolumn:name="Drops",type=integer,JSONPath=`.status.drops.total`
// +kubebuilder:printcolumn:name="Drop %",type=string,JSONPath=`.status.dropPercent`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1,description="Why the resource is or is not Ready"
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1,description="What the Ready condition says"

// CaptureSensor runs a packet sensor on every selected node and publishes what it captures to Kafka.
type CaptureSensor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CaptureSensorSpec   `json:"spec"`
	Status CaptureSensorStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// CaptureSensorList is a list of CaptureSensors.
type CaptureSensorList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CaptureSensor `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CaptureSensor{}, &CaptureSensorList{})
}
