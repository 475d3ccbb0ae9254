package children

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"capfleet.dev/capfleet/api/v1alpha1"
)

var opts = Options{
	Image: "capfleet:test", ImagePullPolicy: corev1.PullIfNotPresent, StatsTopic: "fleet.stats",
	Kafka:     KafkaDefaults{Brokers: []string{"k1:9092", "k2:9092"}},
	Cassandra: CassandraDefaults{Hosts: []string{"c1"}, Port: 9042},
}

func meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Generation: 1}
}

// defaultedSensor is a CaptureSensor as the API server stores it after defaulting.
func defaultedSensor(edit func(*v1alpha1.CaptureSensor)) *v1alpha1.CaptureSensor {
	cs := &v1alpha1.CaptureSensor{ObjectMeta: meta("edge"), Spec: v1alpha1.CaptureSensorSpec{
		Interfaces: []string{"eth0"}, SnapLength: 262144, SampleRate: 1, BufferPackets: 100000,
		Ring:  v1alpha1.RingSpec{BlockSizeKiB: 1024},
		Topic: v1alpha1.TopicSpec{Partitions: 12, ReplicationFactor: 1},
	}}
	if edit != nil {
		edit(cs)
	}
	return cs
}

func TestSensorDaemonSet(t *testing.T) {
	tests := []struct {
		name        string
		edit        func(*v1alpha1.CaptureSensor)
		wantArgs    []string
		absentArgs  []string
		wantSecret  string
		wantMemoryL string
	}{
		{
			name:        "defaults",
			wantArgs:    []string{"sensor", "--interfaces=eth0", "--snaplen=262144", "--topic=ns.edge.packets", "--kafka-brokers=k1:9092,k2:9092", "--ring-blocks=0"},
			absentArgs:  []string{"--filter=", "--kafka-tls", "--kafka-secret-dir=/etc/capfleet/kafka"},
			wantMemoryL: "576Mi", // 512 MiB + the largest ring the sensor sizes from the interface's speed, 64 MiB
		},
		{
			name:        "a ring of fixed size",
			edit:        func(cs *v1alpha1.CaptureSensor) { cs.Spec.Ring.Blocks = 16 },
			wantArgs:    []string{"--ring-blocks=16"},
			wantMemoryL: "528Mi", // 512 MiB + 16 blocks of 1 MiB
		},
		{
			name: "filter, two interfaces, named topic, bigger rings",
			edit: func(cs *v1alpha1.CaptureSensor) {
				cs.Spec.Filter = "tcp port 80"
				cs.Spec.Interfaces = []string{"eth0", "eth1"}
				cs.Spec.Topic.Name = "mirror"
				cs.Spec.Ring = v1alpha1.RingSpec{BlockSizeKiB: 4096, Blocks: 128, FanoutGroup: 7}
			},
			wantArgs:    []string{"--filter=tcp port 80", "--interfaces=eth0,eth1", "--topic=mirror", "--fanout-group=7", "--ring-block-size-kb=4096"},
			wantMemoryL: "1536Mi", // 512 MiB + two 512 MiB rings
		},
		{
			name: "fanout workers",
			edit: func(cs *v1alpha1.CaptureSensor) {
				cs.Spec.Ring = v1alpha1.RingSpec{BlockSizeKiB: 1024, Blocks: 16, FanoutGroup: 9, FanoutWorkers: 3}
			},
			wantArgs:    []string{"--fanout-group=9", "--fanout-workers=3", "--ring-blocks=16"},
			wantMemoryL: "560Mi", // 512 MiB + three 16 MiB rings
		},
		{
			name: "own Kafka with TLS and a Secret",
			edit: func(cs *v1alpha1.CaptureSensor) {
				cs.Spec.Kafka = &v1alpha1.KafkaConnection{BootstrapServers: []string{"secure:9093"}, TLS: ptr(true),
					SecretRef: &corev1.LocalObjectReference{Name: "kafka-creds"}}
			},
			wantArgs:    []string{"--kafka-brokers=secure:9093", "--kafka-tls", "--kafka-secret-dir=/etc/capfleet/kafka"},
			absentArgs:  []string{"--kafka-brokers=k1:9092,k2:9092"},
			wantSecret:  "kafka-creds",
			wantMemoryL: "576Mi",
		},
		{
			name: "resources from the spec win",
			edit: func(cs *v1alpha1.CaptureSensor) {
				cs.Spec.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}}
			},
			wantMemoryL: "2Gi",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := defaultedSensor(tt.edit)
			ds := SensorDaemonSet(cs, opts)
			c := ds.Spec.Template.Spec.Containers[0]
			for _, a := range tt.wantArgs {
				if !slices.Contains(c.Args, a) {
					t.Errorf("missing %q in %v", a, c.Args)
				}
			}
			for _, a := range tt.absentArgs {
				if slices.Contains(c.Args, a) {
					t.Errorf("unexpected %q in %v", a, c.Args)
				}
			}
			if got := c.Resources.Limits.Memory().String(); got != tt.wantMemoryL {
				t.Errorf("memory limit %s, want %s", got, tt.wantMemoryL)
			}
			secrets := secretNames(ds.Spec.Template.Spec.Volumes)
			if (tt.wantSecret == "") != (len(secrets) == 0) || (tt.wantSecret != "" && secrets[0] != tt.wantSecret) {
				t.Errorf("secret volumes %v, want %q", secrets, tt.wantSecret)
			}
			checkSensorInvariants(t, ds.Spec.Template.Spec, c)
			if ref := metav1.GetControllerOf(ds); ref == nil || ref.UID != cs.UID || ref.Kind != "CaptureSensor" {
				t.Errorf("owner reference %+v", ref)
			}
			if ds.Spec.Selector.MatchLabels[LabelInstance] != "edge" || ds.Spec.Template.Labels[LabelInstance] != "edge" {
				t.Errorf("selector %v template labels %v", ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels)
			}
		})
	}
}

// checkSensorInvariants holds for every sensor, whatever its spec.
func checkSensorInvariants(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	if !pod.HostNetwork || pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("hostNetwork %v dnsPolicy %s", pod.HostNetwork, pod.DNSPolicy)
	}
	sc := c.SecurityContext
	if *sc.Privileged || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("security context %+v", sc)
	}
	if got := sc.Capabilities.Add; len(got) != 2 || !slices.Contains(got, "NET_RAW") || !slices.Contains(got, "NET_ADMIN") {
		t.Errorf("capabilities added %v", got)
	}
	if c.ReadinessProbe.HTTPGet.Port.IntValue() != HealthPort || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes %+v %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	if *pod.AutomountServiceAccountToken {
		t.Error("sensor pods need no API token")
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		case e.ValueFrom.ResourceFieldRef != nil:
			env[e.Name] = e.ValueFrom.ResourceFieldRef.ContainerName + "/" + e.ValueFrom.ResourceFieldRef.Resource
		}
	}
	if env["NODE_NAME"] != "spec.nodeName" {
		t.Errorf("NODE_NAME from %q", env["NODE_NAME"])
	}
	if env["MEMORY_LIMIT"] != c.Name+"/limits.memory" {
		t.Errorf("MEMORY_LIMIT from %q, want the container's own limit", env["MEMORY_LIMIT"])
	}
}

func secretNames(vols []corev1.Volume) []string {
	var out []string
	for _, v := range vols {
		if v.Secret != nil {
			out = append(out, v.Secret.SecretName)
		}
	}
	return out
}

func replayJob(edit func(*v1alpha1.ReplayJob)) *v1alpha1.ReplayJob {
	rj := &v1alpha1.ReplayJob{ObjectMeta: meta("rp"), Spec: v1alpha1.ReplayJobSpec{
		Source: v1alpha1.ReplaySource{ConfigMap: &v1alpha1.KeyReference{Name: "caps", Key: "a.pcap"}},
		Loops:  1, Target: v1alpha1.ReplayTarget{Topic: &v1alpha1.TopicSpec{}},
		BackoffLimit: ptr(int32(0)), TTLSecondsAfterFinished: ptr(int32(3600)),
	}}
	if edit != nil {
		edit(rj)
	}
	return rj
}

func TestReplayJobObject(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(*v1alpha1.ReplayJob)
		wantArgs   []string
		absentArgs []string
		volume     func(corev1.Volume) bool
		hostNet    bool
	}{
		{
			name:     "ConfigMap into the default topic at the capture's pace",
			wantArgs: []string{"replay", "--file=/capture/a.pcap", "--multiplier=1", "--loop=1", "--topic=ns.rp.packets", "--kafka-brokers=k1:9092,k2:9092"},
			volume:   func(v corev1.Volume) bool { return v.ConfigMap != nil && v.ConfigMap.Name == "caps" },
		},
		{
			name: "Secret at fixed packets/s, three loops",
			edit: func(rj *v1alpha1.ReplayJob) {
				rj.Spec.Source = v1alpha1.ReplaySource{Secret: &v1alpha1.KeyReference{Name: "s", Key: "b.pcapng"}}
				rj.Spec.Pace = &v1alpha1.ReplayPace{PacketsPerSecond: ptr(int64(5000))}
				rj.Spec.Loops = 3
			},
			wantArgs: []string{"--file=/capture/b.pcapng", "--pps=5000", "--loop=3"},
			volume:   func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == "s" },
		},
		{
			name: "PVC at Mbit/s",
			edit: func(rj *v1alpha1.ReplayJob) {
				rj.Spec.Source = v1alpha1.ReplaySource{PersistentVolumeClaim: &v1alpha1.PVCFile{ClaimName: "traces", Path: "day1/x.pcap"}}
				rj.Spec.Pace = &v1alpha1.ReplayPace{Mbps: ptr(2.5)}
			},
			wantArgs: []string{"--file=/capture/day1/x.pcap", "--mbps=2.5"},
			volume: func(v corev1.Volume) bool {
				return v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "traces" && v.PersistentVolumeClaim.ReadOnly
			},
		},
		{
			name: "URL at top speed onto a node's interface",
			edit: func(rj *v1alpha1.ReplayJob) {
				rj.Spec.Source = v1alpha1.ReplaySource{URL: &v1alpha1.URLSource{URL: "https://x/y.pcap", SHA256: strings.Repeat("ab", 32)}}
				rj.Spec.Pace = &v1alpha1.ReplayPace{TopSpeed: ptr(true)}
				rj.Spec.Target = v1alpha1.ReplayTarget{Interface: &v1alpha1.InterfaceTarget{Name: "veth0", NodeName: "node-7"}}
			},
			wantArgs:   []string{"--url=https://x/y.pcap", "--sha256=" + strings.Repeat("ab", 32), "--top-speed", "--interface=veth0"},
			absentArgs: []string{"--topic=ns.rp.packets"},
			hostNet:    true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rj := replayJob(tt.edit)
			job := ReplayJobObject(rj, opts)
			pod := job.Spec.Template.Spec
			c := pod.Containers[0]
			for _, a := range tt.wantArgs {
				if !slices.Contains(c.Args, a) {
					t.Errorf("missing %q in %v", a, c.Args)
				}
			}
			for _, a := range tt.absentArgs {
				if slices.Contains(c.Args, a) {
					t.Errorf("unexpected %q in %v", a, c.Args)
				}
			}
			if tt.volume != nil && !slices.ContainsFunc(pod.Volumes, tt.volume) {
				t.Errorf("capture volume missing: %+v", pod.Volumes)
			}
			if pod.HostNetwork != tt.hostNet {
				t.Errorf("hostNetwork %v", pod.HostNetwork)
			}
			if tt.hostNet {
				terms := pod.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
				if terms[0].MatchFields[0].Values[0] != "node-7" || !slices.Equal(c.SecurityContext.Capabilities.Add, []corev1.Capability{"NET_RAW"}) {
					t.Errorf("not pinned to node-7 with NET_RAW: %+v %+v", terms, c.SecurityContext.Capabilities)
				}
			} else if !*c.SecurityContext.RunAsNonRoot || len(c.SecurityContext.Capabilities.Add) != 0 {
				t.Errorf("a topic replay needs no privilege: %+v", c.SecurityContext)
			}
			if pod.RestartPolicy != corev1.RestartPolicyNever || *job.Spec.BackoffLimit != 0 || *job.Spec.TTLSecondsAfterFinished != 3600 {
				t.Errorf("restart %s backoff %d ttl %d", pod.RestartPolicy, *job.Spec.BackoffLimit, *job.Spec.TTLSecondsAfterFinished)
			}
			if len(job.Name) > 63 || !strings.HasPrefix(job.Name, "rp-replay-") {
				t.Errorf("job name %q", job.Name)
			}
		})
	}
}

func TestReplayJobNameFollowsWhatItRuns(t *testing.T) {
	a := ReplayJobObject(replayJob(nil), opts).Name
	if b := ReplayJobObject(replayJob(nil), opts).Name; a != b {
		t.Fatalf("same spec, different Job names %s %s", a, b)
	}
	changed := ReplayJobObject(replayJob(func(rj *v1alpha1.ReplayJob) { rj.Spec.Loops = 2 }), opts).Name
	if changed == a {
		t.Fatalf("a spec change kept the Job name %s", a)
	}
	long := replayJob(func(rj *v1alpha1.ReplayJob) { rj.Name = strings.Repeat("x", 80) })
	if n := ReplayJobObject(long, opts).Name; len(n) > 63 {
		t.Fatalf("name %q longer than 63", n)
	}
}

// Names that fit keep their plain form; names that do not are cut with a hash of the whole name, so two long
// owners sharing a prefix still get distinct children.
func TestChildNamesFitAndDoNotCollide(t *testing.T) {
	if n := SensorDaemonSetName(defaultedSensor(func(cs *v1alpha1.CaptureSensor) { cs.Name = "edge" })); n != "edge-sensor" {
		t.Errorf("short name became %q", n)
	}
	prefix := strings.Repeat("a", 55)
	a := SensorDaemonSetName(defaultedSensor(func(cs *v1alpha1.CaptureSensor) { cs.Name = prefix + "-east" }))
	b := SensorDaemonSetName(defaultedSensor(func(cs *v1alpha1.CaptureSensor) { cs.Name = prefix + "-west" }))
	if a == b {
		t.Fatalf("two long sensors share the DaemonSet %s", a)
	}
	for _, n := range []string{a, b} {
		if len(n) > 63 || !strings.HasSuffix(n, "-sensor") || strings.Contains(n, "--") {
			t.Errorf("DaemonSet name %q (%d characters)", n, len(n))
		}
	}
	p := PipelineDeploymentName(pipeline(func(pp *v1alpha1.PacketPipeline) { pp.Name = strings.Repeat("p", 63) }))
	if len(p) > 63 || !strings.HasSuffix(p, "-processor") {
		t.Errorf("Deployment name %q (%d characters)", p, len(p))
	}
}

func pipeline(edit func(*v1alpha1.PacketPipeline)) *v1alpha1.PacketPipeline {
	pp := &v1alpha1.PacketPipeline{ObjectMeta: meta("flows"), Spec: v1alpha1.PacketPipelineSpec{
		Source:   v1alpha1.PipelineSource{Sensor: "edge"},
		Replicas: ptr(int32(2)),
		Flows:    v1alpha1.FlowSettings{IdleTimeout: &metav1.Duration{Duration: 60e9}, MaxFlows: 1000},
		Sinks: v1alpha1.PipelineSinks{Cassandra: &v1alpha1.CassandraSink{
			Flows: true, Keyspace: "capfleet", ReplicationFactor: 3, FlowTTL: &metav1.Duration{Duration: 3600e9},
		}},
	}}
	if edit != nil {
		edit(pp)
	}
	return pp
}

func TestPipelineDeployment(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(*v1alpha1.PacketPipeline)
		wantArgs   []string
		absentArgs []string
		secrets    []string
	}{
		{
			name: "flows into Cassandra",
			wantArgs: []string{"process", "--topic=ns.edge.packets", "--group=capfleet.ns.flows", "--store-flows", "--flow-ttl=1h0m0s",
				"--keyspace=capfleet", `--replication={"class":"SimpleStrategy","replication_factor":3}`, "--cassandra-hosts=c1",
				"--cassandra-port=9042", "--flow-table-max=1000", "--flow-idle-timeout=1m0s", "--sensor=edge"},
			absentArgs: []string{"--store-packets", "--flows-topic=ns.flows.flows", "--records-topic=ns.flows.records", "--flow-features=cic"},
		},
		{
			name: "CICFlowMeter features",
			edit: func(pp *v1alpha1.PacketPipeline) {
				pp.Spec.Flows.Features = []v1alpha1.FlowFeature{v1alpha1.FlowFeatureCIC}
			},
			wantArgs: []string{"--flow-features=cic"},
		},
		{
			name:     "packet records to the default topic",
			edit:     func(pp *v1alpha1.PacketPipeline) { pp.Spec.Sinks.PacketRecords = &v1alpha1.PacketRecordsSink{} },
			wantArgs: []string{"--records-topic=ns.flows.records"},
		},
		{
			name: "packet records to a named topic, without Cassandra",
			edit: func(pp *v1alpha1.PacketPipeline) {
				pp.Spec.Sinks.Cassandra = nil
				pp.Spec.Sinks.PacketRecords = &v1alpha1.PacketRecordsSink{Topic: v1alpha1.TopicSpec{Name: "parsed"}}
			},
			wantArgs:   []string{"--records-topic=parsed"},
			absentArgs: []string{"--store-flows", "--store-packets"},
		},
		{
			name: "packets too, own group, credentials, Kafka flows",
			edit: func(pp *v1alpha1.PacketPipeline) {
				pp.Spec.ConsumerGroup = "mine"
				pp.Spec.Filter = "not arp"
				pp.Spec.DisplayFilter = "dns.qry.name contains \"corp\""
				pp.Spec.Sinks.Cassandra.Packets = true
				pp.Spec.Sinks.Cassandra.Connection = &v1alpha1.CassandraConnection{SecretRef: &corev1.LocalObjectReference{Name: "cass"}, TLS: ptr(true)}
				pp.Spec.Sinks.Kafka = &v1alpha1.KafkaFlowSink{Topic: v1alpha1.TopicSpec{Name: "flows-json"}}
				pp.Spec.Kafka = &v1alpha1.KafkaConnection{SecretRef: &corev1.LocalObjectReference{Name: "kaf"}}
			},
			wantArgs: []string{"--group=mine", "--filter=not arp", `--display-filter=dns.qry.name contains "corp"`, "--store-packets", "--packet-ttl=168h0m0s", "--cassandra-tls",
				"--cassandra-secret-dir=/etc/capfleet/cassandra", "--kafka-secret-dir=/etc/capfleet/kafka", "--flows-topic=flows-json"},
			secrets: []string{"kaf", "cass"},
		},
		{
			name: "traffic counters every minute, no edge rollups",
			edit: func(pp *v1alpha1.PacketPipeline) {
				pp.Spec.Traffic = &v1alpha1.TrafficSettings{Step: &metav1.Duration{Duration: 60e9}, EdgeWindow: &metav1.Duration{}}
			},
			wantArgs: []string{"--traffic-step=1m0s", "--edge-window=0s", "--rollup-ttl=720h0m0s"},
		},
		{
			name: "IPFIX export",
			edit: func(pp *v1alpha1.PacketPipeline) {
				pp.Spec.Sinks.IPFIX = &v1alpha1.IPFIXFlowSink{Collectors: []string{"nfcapd:4739", "[fd00::1]:2055"}, ObservationDomain: 7}
			},
			wantArgs: []string{"--ipfix=nfcapd:4739,[fd00::1]:2055", "--ipfix-domain=7"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pp := pipeline(tt.edit)
			d := PipelineDeployment(pp, "ns.edge.packets", opts)
			c := d.Spec.Template.Spec.Containers[0]
			for _, a := range tt.wantArgs {
				if !slices.Contains(c.Args, a) {
					t.Errorf("missing %q in %v", a, c.Args)
				}
			}
			for _, a := range tt.absentArgs {
				if slices.Contains(c.Args, a) {
					t.Errorf("unexpected %q in %v", a, c.Args)
				}
			}
			if got := secretNames(d.Spec.Template.Spec.Volumes); !slices.Equal(got, tt.secrets) {
				t.Errorf("secret volumes %v, want %v", got, tt.secrets)
			}
			if *d.Spec.Replicas != 2 || !*c.SecurityContext.RunAsNonRoot || !*c.SecurityContext.ReadOnlyRootFilesystem {
				t.Errorf("replicas %d security %+v", *d.Spec.Replicas, c.SecurityContext)
			}
			if d.Spec.Template.Spec.HostNetwork {
				t.Error("processors need no host network")
			}
		})
	}
}

// TestWorkloadHostNetwork: on a node without a pod network (Options.HostNetwork) every workload runs in the
// node's network namespace, and the kinds that share a node listen on different ports.
func TestWorkloadHostNetwork(t *testing.T) {
	onNode := func(rj *v1alpha1.ReplayJob) {
		rj.Spec.Target = v1alpha1.ReplayTarget{Interface: &v1alpha1.InterfaceTarget{Name: "veth0", NodeName: "node-7"}}
	}
	hostOpts := opts
	hostOpts.HostNetwork = true
	tests := []struct {
		name            string
		pod             corev1.PodSpec
		hostNet         bool
		metrics, health string // "" when the workload has no such endpoint (a replay in the node's network has neither)
	}{
		{"sensor, pod network", SensorDaemonSet(defaultedSensor(nil), opts).Spec.Template.Spec, true, "9090", "9091"},
		{"processor, pod network", PipelineDeployment(pipeline(nil), "t", opts).Spec.Template.Spec, false, "9090", "9091"},
		{"topic replay, pod network", ReplayJobObject(replayJob(nil), opts).Spec.Template.Spec, false, "9090", ""},
		{"interface replay, pod network", ReplayJobObject(replayJob(onNode), opts).Spec.Template.Spec, true, "", ""},
		{"sensor, host network", SensorDaemonSet(defaultedSensor(nil), hostOpts).Spec.Template.Spec, true, "9090", "9091"},
		{"processor, host network", PipelineDeployment(pipeline(nil), "t", hostOpts).Spec.Template.Spec, true, "9290", "9291"},
		{"topic replay, host network", ReplayJobObject(replayJob(nil), hostOpts).Spec.Template.Spec, true, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.pod.Containers[0]
			if tt.pod.HostNetwork != tt.hostNet {
				t.Errorf("hostNetwork %v, want %v", tt.pod.HostNetwork, tt.hostNet)
			}
			if tt.hostNet != (tt.pod.DNSPolicy == corev1.DNSClusterFirstWithHostNet) {
				t.Errorf("dnsPolicy %q with hostNetwork %v", tt.pod.DNSPolicy, tt.hostNet)
			}
			if tt.metrics == "" {
				// Many replays share a node: none may claim a node port.
				if !slices.Contains(c.Args, "--metrics-addr=") || len(c.Ports) != 0 {
					t.Errorf("a replay in the node's network serves metrics: args %v ports %+v", c.Args, c.Ports)
				}
				return
			}
			if !slices.Contains(c.Args, "--metrics-addr=:"+tt.metrics) || c.Ports[0].ContainerPort != mustAtoi(t, tt.metrics) {
				t.Errorf("metrics port %s: args %v ports %+v", tt.metrics, c.Args, c.Ports)
			}
			if tt.health == "" {
				return
			}
			if !slices.Contains(c.Args, "--health-addr=:"+tt.health) || c.ReadinessProbe.HTTPGet.Port.IntVal != mustAtoi(t, tt.health) {
				t.Errorf("health port %s: args %v probe %+v", tt.health, c.Args, c.ReadinessProbe.HTTPGet)
			}
		})
	}
}

func mustAtoi(t *testing.T, s string) int32 {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

// TestSecretsReadableByNonRootWorkloads: Secrets are mounted 0400 and owned by root, so a workload running as
// a non-root user reads them only through the pod's fsGroup being that user's group.
func TestSecretsReadableByNonRootWorkloads(t *testing.T) {
	withSecret := func(pp *v1alpha1.PacketPipeline) {
		pp.Spec.Sinks.Cassandra.Connection = &v1alpha1.CassandraConnection{SecretRef: &corev1.LocalObjectReference{Name: "cass"}}
	}
	for name, pod := range map[string]corev1.PodSpec{
		"processor": PipelineDeployment(pipeline(withSecret), "t", opts).Spec.Template.Spec,
		"topic replay": ReplayJobObject(replayJob(func(rj *v1alpha1.ReplayJob) {
			rj.Spec.Kafka = &v1alpha1.KafkaConnection{SecretRef: &corev1.LocalObjectReference{Name: "k"}}
		}), opts).Spec.Template.Spec,
	} {
		user := pod.Containers[0].SecurityContext.RunAsUser
		if user == nil || *user == 0 || pod.SecurityContext == nil || pod.SecurityContext.FSGroup == nil || *pod.SecurityContext.FSGroup != *user {
			t.Errorf("%s: runAsUser %v, pod securityContext %+v: the mounted Secret is unreadable", name, user, pod.SecurityContext)
		}
	}
}

// Every workload names the resource it serves and the stats topic, so its heartbeats reach that resource's status.
func TestWorkloadsBeatForTheirResource(t *testing.T) {
	cs := defaultedSensor(nil)
	rj := replayJob(func(rj *v1alpha1.ReplayJob) {
		rj.Spec.Target = v1alpha1.ReplayTarget{Interface: &v1alpha1.InterfaceTarget{Name: "eth0", NodeName: "n"}}
	})
	pp := pipeline(nil)
	for _, w := range []struct {
		kind  string
		owner metav1.Object
		c     corev1.Container
	}{
		{"CaptureSensor", cs, SensorDaemonSet(cs, opts).Spec.Template.Spec.Containers[0]},
		{"ReplayJob", rj, ReplayJobObject(rj, opts).Spec.Template.Spec.Containers[0]},
		{"PacketPipeline", pp, PipelineDeployment(pp, "t", opts).Spec.Template.Spec.Containers[0]},
	} {
		env := map[string]string{}
		for _, e := range w.c.Env {
			env[e.Name] = e.Value
		}
		if env["CAPFLEET_RESOURCE_KIND"] != w.kind || env["CAPFLEET_RESOURCE_NAME"] != w.owner.GetName() ||
			env["CAPFLEET_RESOURCE_NAMESPACE"] != "ns" || env["CAPFLEET_RESOURCE_UID"] != string(w.owner.GetUID()) {
			t.Errorf("%s: identity env %v", w.kind, env)
		}
		if !slices.Contains(w.c.Args, "--stats-topic=fleet.stats") || !slices.Contains(w.c.Args, "--kafka-brokers=k1:9092,k2:9092") {
			t.Errorf("%s: no stats topic or Kafka in %v", w.kind, w.c.Args)
		}
	}
}
