package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReplayJobSpec says which capture to replay, how fast, and where to.
type ReplayJobSpec struct {
	// Source of the capture file (pcap or pcapng, optionally gzipped). Exactly one kind of source.
	Source ReplaySource `json:"source"`

	// Pace of the replay. Exactly one of multiplier, packetsPerSecond, mbps, topSpeed; empty replays
	// with the capture's own timing (multiplier 1).
	// +optional
	Pace *ReplayPace `json:"pace,omitempty"`

	// Loops is how many times the file is replayed; 0 replays until the job is deleted.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	Loops int32 `json:"loops,omitempty"`

	// Target the packets are sent to. Exactly one kind of target.
	Target ReplayTarget `json:"target"`

	// Kafka connection for a topic target; empty fields take the operator's defaults.
	// +optional
	Kafka *KafkaConnection `json:"kafka,omitempty"`

	// BackoffLimit is how many times a failed replay is retried.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`

	// TTLSecondsAfterFinished removes the finished Job (not this ReplayJob) after this many seconds.
	// +optional
	// +kubebuilder:default=3600
	// +kubebuilder:validation:Minimum=0
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`

	WorkloadSettings `json:",inline"`
}

// ReplaySource is where the capture file comes from.
// +kubebuilder:validation:XValidation:rule="[has(self.configMap), has(self.secret), has(self.persistentVolumeClaim), has(self.url)].filter(x, x).size() == 1",message="source: set exactly one of configMap, secret, persistentVolumeClaim, url"
type ReplaySource struct {
	// ConfigMap key holding the capture (binaryData).
	// +optional
	ConfigMap *KeyReference `json:"configMap,omitempty"`
	// Secret key holding the capture.
	// +optional
	Secret *KeyReference `json:"secret,omitempty"`
	// PersistentVolumeClaim and the path of the file on it.
	// +optional
	PersistentVolumeClaim *PVCFile `json:"persistentVolumeClaim,omitempty"`
	// URL to fetch the capture from, checked against its SHA-256 before a packet is sent.
	// +optional
	URL *URLSource `json:"url,omitempty"`
}

// KeyReference names a key of a ConfigMap or Secret in the same namespace.
type KeyReference struct {
	// Name of the ConfigMap or Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key within it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// PVCFile is a file on a PersistentVolumeClaim.
type PVCFile struct {
	// ClaimName of the PersistentVolumeClaim in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ClaimName string `json:"claimName"`
	// Path of the file relative to the volume's root.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.contains('..')",message="path must be relative to the volume and must not contain '..'"
	Path string `json:"path"`
}

// URLSource is a capture fetched over HTTP(S).
type URLSource struct {
	// URL of the capture file, http or https.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://`
	URL string `json:"url"`
	// SHA256 of the file, in hex. The replay fails, sending nothing, when the download does not match.
	// +kubebuilder:validation:Pattern=`^[a-fA-F0-9]{64}$`
	SHA256 string `json:"sha256"`
}

// ReplayPace is how fast the capture is replayed, like tcpreplay's --multiplier, --pps, --mbps and --topspeed.
// +kubebuilder:validation:XValidation:rule="[has(self.multiplier), has(self.packetsPerSecond), has(self.mbps), has(self.topSpeed) && self.topSpeed].filter(x, x).size() == 1",message="pace: set exactly one of multiplier, packetsPerSecond, mbps, topSpeed"
type ReplayPace struct {
	// Multiplier of the capture's own timing: 2 replays twice as fast.
	// +optional
	// +kubebuilder:validation:Minimum=0.0001
	// +kubebuilder:validation:Maximum=100000
	// +kubebuilder:validation:XValidation:rule="self > 0.0",message="multiplier must be greater than 0"
	Multiplier *float64 `json:"multiplier,omitempty"`
	// PacketsPerSecond replays at a fixed packet rate.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000000
	PacketsPerSecond *int64 `json:"packetsPerSecond,omitempty"`
	// Mbps replays at a fixed bit rate, in megabits per second.
	// +optional
	// +kubebuilder:validation:Minimum=0.001
	// +kubebuilder:validation:Maximum=1000000
	// +kubebuilder:validation:XValidation:rule="self > 0.0",message="mbps must be greater than 0"
	Mbps *float64 `json:"mbps,omitempty"`
	// TopSpeed replays as fast as the target accepts.
	// +optional
	TopSpeed *bool `json:"topSpeed,omitempty"`
}

// ReplayTarget is where replayed packets go.
// +kubebuilder:validation:XValidation:rule="has(self.interface) != has(self.topic)",message="target: set exactly one of interface, topic"
type ReplayTarget struct {
	// Interface on a node to send the packets out of (what a sensor there then captures).
	// +optional
	Interface *InterfaceTarget `json:"interface,omitempty"`
	// Topic to write the packets to as packet records, feeding a pipeline without a sensor.
	// +optional
	Topic *TopicSpec `json:"topic,omitempty"`
}

// InterfaceTarget is a network interface on one node.
type InterfaceTarget struct {
	// Name of the interface.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._@-]+$`
	// +kubebuilder:validation:XValidation:rule="self != 'any'",message="name: packets are sent out of one interface; \"any\" names none"
	Name string `json:"name"`
	// NodeName of the node the replay runs on.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	NodeName string `json:"nodeName"`
}

// ReplayPhase is where a replay is in its life.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type ReplayPhase string

// Replay phases.
const (
	ReplayPending   ReplayPhase = "Pending"
	ReplayRunning   ReplayPhase = "Running"
	ReplaySucceeded ReplayPhase = "Succeeded"
	ReplayFailed    ReplayPhase = "Failed"
)

// ReplayJobStatus reports the replay's progress.
type ReplayJobStatus struct {
	CommonStatus `json:",inline"`

	// Phase of the replay.
	// +optional
	Phase ReplayPhase `json:"phase,omitempty"`
	// Progress in percent of the packets to send, e.g. "42%".
	// +optional
	Progress string `json:"progress,omitempty"`
	// PacketsSent so far.
	// +optional
	PacketsSent int64 `json:"packetsSent,omitempty"`
	// BytesSent so far.
	// +optional
	BytesSent int64 `json:"bytesSent,omitempty"`
	// PacketsTotal is how many packets the whole replay sends (all loops).
	// +optional
	PacketsTotal int64 `json:"packetsTotal,omitempty"`
	// PacketsPerSecond is the current send rate.
	// +optional
	PacketsPerSecond int64 `json:"packetsPerSecond,omitempty"`
	// Failed packets the target refused.
	// +optional
	Failed int64 `json:"failed,omitempty"`
	// Truncated packets, sent shorter than on the wire because the capture cut them.
	// +optional
	Truncated int64 `json:"truncated,omitempty"`
	// StartTime of the replay.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime of the replay.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// Job that runs the replay.
	// +optional
	Job string `json:"job,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rjob;rj,categories=capfleet
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it becomes the app.kubernetes.io/instance label of the workload's pods"
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress`
// +kubebuilder:printcolumn:name="Sent",type=integer,JSONPath=`.status.packetsSent`
// +kubebuilder:printcolumn:name="Packets/s",type=integer,JSONPath=`.status.packetsPerSecond`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1,description="Why the resource is or is not Ready"
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1,description="What the Ready condition says"

// ReplayJob replays a capture file onto a node's interface or into a packets topic, like tcpreplay.
type ReplayJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ReplayJobSpec   `json:"spec"`
	Status ReplayJobStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ReplayJobList is a list of ReplayJobs.
type ReplayJobList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ReplayJob `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ReplayJob{}, &ReplayJobList{})
}
