package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types every capfleet resource reports, in the form kstatus and GitOps tools read.
const (
	// ConditionReady is True when the resource does what its spec asks.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator or the workload is still moving towards the spec.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when progress needs a change of the spec or of the environment.
	ConditionStalled = "Stalled"
)

// KafkaConnection says how a workload reaches Kafka. Fields left empty take the operator-wide default.
// Credentials and certificates are never written here: they come from the referenced Secret, mounted as files.
type KafkaConnection struct {
	// BootstrapServers are host:port pairs of Kafka brokers. Empty takes the operator's default.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=atomic
	BootstrapServers []string `json:"bootstrapServers,omitempty"`

	// TLS turns on TLS to the brokers. Unset takes the operator's default.
	// +optional
	TLS *bool `json:"tls,omitempty"`

	// SecretRef names a Secret in the resource's namespace holding any of: ca.crt, tls.crt, tls.key,
	// sasl.mechanism (SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN), username, password. It is mounted read-only
	// into the workload; its values never appear in arguments, specs or logs.
	// +optional
	SecretRef *corev1.LocalObjectReference `json:"secretRef,omitempty"`
}

// CassandraConnection says how a workload reaches Cassandra. Fields left empty take the operator-wide default.
type CassandraConnection struct {
	// ContactPoints are Cassandra hosts to connect to first. Empty takes the operator's default.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=atomic
	ContactPoints []string `json:"contactPoints,omitempty"`

	// Port is the CQL native transport port.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`

	// TLS turns on TLS to Cassandra. Unset takes the operator's default.
	// +optional
	TLS *bool `json:"tls,omitempty"`

	// SecretRef names a Secret in the resource's namespace holding username, password and optionally ca.crt.
	// It is mounted read-only into the workload.
	// +optional
	SecretRef *corev1.LocalObjectReference `json:"secretRef,omitempty"`
}

// TopicSpec describes a Kafka topic a resource writes to or reads from.
type TopicSpec struct {
	// Name of the topic. Empty means "<namespace>.<resource name>.<purpose>".
	// +optional
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]*$`
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..'",message="name: Kafka refuses the topic names . and .."
	Name string `json:"name,omitempty"`

	// Partitions of the topic. Raising it adds partitions; lowering it is refused, as Kafka cannot.
	// +optional
	// +kubebuilder:default=12
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	Partitions int32 `json:"partitions,omitempty"`

	// ReplicationFactor of the topic's partitions.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=32
	ReplicationFactor int32 `json:"replicationFactor,omitempty"`

	// Retention is how long Kafka keeps records (retention.ms).
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="retention must be a positive duration, e.g. 24h"
	Retention *metav1.Duration `json:"retention,omitempty"`
}

// WorkloadSettings are the pod-level knobs shared by every workload capfleet runs.
type WorkloadSettings struct {
	// Resources of the workload's container. Empty takes requests and limits sized for modest traffic.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// NodeSelector restricts the workload to nodes carrying these labels.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Tolerations let the workload run on tainted nodes.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
}

// DeletionPolicy says what happens to a resource's Kafka topics when the resource is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type DeletionPolicy string

const (
	// DeletionPolicyRetain keeps the topics and their data.
	DeletionPolicyRetain DeletionPolicy = "Retain"
	// DeletionPolicyDelete deletes the topics the operator created.
	DeletionPolicyDelete DeletionPolicy = "Delete"
)

// CommonStatus is the part of the status every capfleet resource shares.
type CommonStatus struct {
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Reconciling and Stalled, as kstatus reads them.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// TopicStatus is a Kafka topic as it exists.
type TopicStatus struct {
	// Name of the topic.
	Name string `json:"name"`
	// Partitions the topic has.
	// +optional
	Partitions int32 `json:"partitions,omitempty"`
	// ReplicationFactor of its partitions.
	// +optional
	ReplicationFactor int32 `json:"replicationFactor,omitempty"`
	// RetentionMs is the topic's retention.ms.
	// +optional
	RetentionMs int64 `json:"retentionMs,omitempty"`
	// Created is true when the operator created the topic; only such topics are ever deleted by it.
	// +optional
	Created bool `json:"created,omitempty"`
	// Message says why the topic does not match the spec, when it does not.
	// +optional
	Message string `json:"message,omitempty"`
}

// TopicsFinalizer lets the operator delete the topics it created when a resource asks for deletionPolicy Delete.
const TopicsFinalizer = "capture.capfleet.dev/topics"
