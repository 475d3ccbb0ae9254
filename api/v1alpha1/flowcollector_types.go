package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FlowCollectorSpec says where routers send NetFlow/IPFIX and where their flows are stored.
type FlowCollectorSpec struct {
	// Port the collector receives NetFlow v5/v9 and IPFIX on (UDP), in its pods and on its Service.
	// +optional
	// +kubebuilder:default=2055
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// ServiceType of the UDP Service exporters send to: ClusterIP for exporters in the cluster, NodePort
	// or LoadBalancer for routers outside it.
	// +optional
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	ServiceType corev1.ServiceType `json:"serviceType,omitempty"`

	// Replicas of the collector. The Service keeps each exporter on one pod (session affinity by client
	// address), so the templates an exporter sent stay with the pod that decodes its data.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Replicas *int32 `json:"replicas,omitempty"`

	// TemplateTimeout forgets a v9/IPFIX template an exporter has not resent for this long (RFC 7011's
	// template timeout over UDP); it must exceed the exporters' template refresh.
	// +optional
	// +kubebuilder:default="30m"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="templateTimeout must be positive"
	TemplateTimeout *metav1.Duration `json:"templateTimeout,omitempty"`

	// Store is where the flows go: the flow tables PacketPipelines write, so queries cover both.
	// +optional
	// +kubebuilder:default={}
	Store FlowCollectorStore `json:"store,omitempty"`

	// Kafka connection for the heartbeats that bring the collector's figures into the status; empty fields
	// take the operator's defaults.
	// +optional
	Kafka *KafkaConnection `json:"kafka,omitempty"`

	WorkloadSettings `json:",inline"`
}

// FlowCollectorStore is the Cassandra keyspace flows are stored in.
type FlowCollectorStore struct {
	// FlowTTL is how long flow records are kept; 0 keeps them forever.
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="flowTTL must not be negative (0 keeps flows forever)"
	FlowTTL *metav1.Duration `json:"flowTTL,omitempty"`
	// Keyspace the tables live in; created if missing. Cassandra's own keyspaces are refused.
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

// FlowCollectorStatus reports what the collector receives and loses.
type FlowCollectorStatus struct {
	CommonStatus `json:",inline"`

	// MetricsPort is the node port the collectors serve Prometheus /metrics on when they run in their
	// node's network (the operator's --workload-host-network): the operator gives each such collector,
	// pipeline and CaptureSensor a pair of its own, so several share a node. 0 when they have a network of
	// their own.
	// +optional
	MetricsPort int32 `json:"metricsPort,omitempty"`
	// HealthPort is the node port of the collectors' /healthz and /readyz then.
	// +optional
	HealthPort int32 `json:"healthPort,omitempty"`

	// Replicas of the collector that exist.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReadyReplicas of the collector.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// RecordsPerSecond is flow records decoded per second, over all pods.
	// +optional
	RecordsPerSecond int64 `json:"recordsPerSecond,omitempty"`
	// Exporters is how many exporters (source addresses) the pods have heard from.
	// +optional
	Exporters int64 `json:"exporters,omitempty"`
	// SequenceGaps is what the exporters' sequence numbers say was lost on the way: flows (v5), export
	// packets (v9), data records (IPFIX), since the collector started.
	// +optional
	SequenceGaps int64 `json:"sequenceGaps,omitempty"`
	// TemplateErrors is data sets that came without a live template, plus malformed sets and packets.
	// +optional
	TemplateErrors int64 `json:"templateErrors,omitempty"`
	// FlowsWritten is flow records stored in Cassandra.
	// +optional
	FlowsWritten int64 `json:"flowsWritten,omitempty"`
	// Drops is flow records dropped because too many waited for Cassandra.
	// +optional
	Drops int64 `json:"drops,omitempty"`
	// SinkErrors is failed Cassandra writes (each retried).
	// +optional
	SinkErrors int64 `json:"sinkErrors,omitempty"`
	// Deployment that runs the collectors.
	// +optional
	Deployment string `json:"deployment,omitempty"`
	// Service exporters send to.
	// +optional
	Service string `json:"service,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas
// +kubebuilder:resource:shortName=fcol;fc,categories=capfleet
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it becomes the app.kubernetes.io/instance label of the workload's pods"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Records/s",type=integer,JSONPath=`.status.recordsPerSecond`
// +kubebuilder:printcolumn:name="Exporters",type=integer,JSONPath=`.status.exporters`
// +kubebuilder:printcolumn:name="Gaps",type=integer,JSONPath=`.status.sequenceGaps`
// +kubebuilder:printcolumn:name="Template Errors",type=integer,JSONPath=`.status.templateErrors`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1,description="Why the resource is or is not Ready"
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1,description="What the Ready condition says"

// FlowCollector receives NetFlow v5/v9 and IPFIX from routers and stores their flows with the sensors'.
type FlowCollector struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   FlowCollectorSpec   `json:"spec,omitempty"`
	Status FlowCollectorStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// FlowCollectorList is a list of FlowCollectors.
type FlowCollectorList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FlowCollector `json:"items"`
}

func init() {
	SchemeBuilder.Register(&FlowCollector{}, &FlowCollectorList{})
}
