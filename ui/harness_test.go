package ui

import (
	"context"
	"io"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/internal/cassandratest"
	"capfleet.dev/capfleet/internal/cassconn"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/manager"
	"capfleet.dev/capfleet/processor/block"
	"capfleet.dev/capfleet/processor/decode"
	"capfleet.dev/capfleet/processor/pipeline"
	"capfleet.dev/capfleet/processor/pipeline/pipelinetest"
	"capfleet.dev/capfleet/processor/store"
)

// lab is a real API server with the UI running against it as a user bound to the generated
// config/ui/role.yaml only, a namespace "lab" with one resource of each kind, and two service accounts
// whose tokens the API server issues: "analyst", allowed to read the capture kinds of lab, and
// "outsider", allowed nothing.
type lab struct {
	admin            client.Client
	kube             kubernetes.Interface
	url              string
	analyst, outside string
	captures         map[string]capture // the files whose flows and packets the pipeline stored, by name
}

const labNS = "lab"

func startLab(t *testing.T) *lab {
	t.Helper()
	// Logs outlive a test (the watches stop after it): to stderr with -v, else nowhere.
	logTo := io.Discard
	if testing.Verbose() {
		logTo = os.Stderr
	}
	log := zap.New(zap.WriteTo(logTo))
	ctrllog.SetLogger(log)
	root := testenv.Root(t)
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: testenv.KubebuilderAssets(t),
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	l := &lab{}
	if l.admin, err = client.New(cfg, client.Options{Scheme: manager.Scheme()}); err != nil {
		t.Fatal(err)
	}
	if l.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// The UI's own identity: the generated role and nothing else, so a missing marker fails here.
	data, err := os.ReadFile(filepath.Join(root, "config", "ui", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(data, role); err != nil {
		t.Fatal(err)
	}
	must(t, l.admin.Create(ctx, role))
	must(t, l.admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "capfleet-ui"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: "capfleet-ui"}},
	}))
	uiUser, err := env.AddUser(envtest.User{Name: "capfleet-ui"}, cfg)
	if err != nil {
		t.Fatal(err)
	}

	must(t, l.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: labNS}}))
	must(t, l.admin.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: labNS, Name: "capture-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{v1alpha1.GroupVersion.Group},
			Resources: []string{resSensors, resPipelines, resReplays}, Verbs: []string{"get", "list", "watch"}}},
	}))
	must(t, l.admin.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: labNS, Name: "analyst"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "capture-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "analyst", Namespace: labNS}},
	}))
	l.analyst = saToken(t, l.kube, "analyst")
	l.outside = saToken(t, l.kube, "outsider")

	// The stored data: the flows and packets of a capture, at their own times, in a fresh keyspace.
	ccfg, ks := storeCapture(t, l, "lab-sensor")
	l.createFleet(t, ks)

	s, err := New(ctx, Options{Config: uiUser.Config(), Cassandra: ccfg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if err := s.Start(sctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	l.url = srv.URL
	return l
}

// saToken makes a service account and returns a token the API server issued for it, as
// `kubectl create token` does.
func saToken(t *testing.T, kube kubernetes.Interface, name string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := kube.CoreV1().ServiceAccounts(labNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := kube.CoreV1().ServiceAccounts(labNS).CreateToken(ctx, name, &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// storeCapture stores, under sensor, the flows (as the pipeline's flow table makes them) and the packets
// of testdata/dns.pcap (eleven hosts, the graph's) and testdata/http.pcap (one TCP connection, the pcap
// download's), each file in a Kafka partition of its own, at their own times; it returns how to reach
// them.
func storeCapture(t *testing.T, l *lab, sensor string) (cassconn.Config, string) {
	t.Helper()
	ccfg := cassandratest.Config(t)
	ks := cassandratest.NewKeyspace(t, ccfg)
	cl, err := ccfg.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Migrate(ctx, cl, ks, store.DefaultReplication); err != nil {
		t.Fatal(err)
	}
	s, err := store.Connect(cl, ks)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := store.NewWriter(s, store.Options{})
	l.captures = map[string]capture{}
	for part, name := range []string{"dns.pcap", "http.pcap"} {
		c := capture{path: filepath.Join(testenv.Root(t), "testdata", name)}
		frames := pipelinetest.ReadCapture(t, c.path)
		c.first, c.last = pipelinetest.TimeSpan(frames)
		c.flows = pipelinetest.ExpectedFlows(t, frames, pipeline.FlowConfig{IdleTimeout: time.Minute, ActiveTimeout: time.Hour, MaxFlows: 1 << 20}, sensor)
		l.captures[name] = c
		if err := w.WriteFlows(ctx, c.flows, 0); err != nil {
			t.Fatal(err)
		}
		var blocks []store.Block
		b := block.NewBuilder(block.Limits{})
		var lts []uint32
		dec := decode.NewDecoder()
		var pkt decode.Packet
		for i, f := range frames {
			// The block's address index, as the pipeline fills it: every IP header's ends.
			dec.Decode(f.Data, decode.LinkType(f.Meta.LinkType), f.Meta.Timestamp, f.Meta.OrigLen, &pkt)
			var addrs []netip.Addr
			for j := 0; j < int(pkt.NIP) && j < len(pkt.IP); j++ {
				addrs = append(addrs, pkt.IP[j].Src, pkt.IP[j].Dst)
			}
			bp := block.Packet{Offset: int64(i), Timestamp: f.Meta.Timestamp.UnixNano(), OrigLen: f.Meta.OrigLen, LinkType: uint32(f.Meta.LinkType),
				Node: f.Meta.Node, Interface: f.Meta.Interface, Data: f.Data}
			if b.Len() > 0 && b.Full(&bp) {
				blocks = append(blocks, store.NewBlock(sensor, int32(part), b.Seal(), lts))
				lts = nil
			}
			b.Add(&bp, addrs...)
			if !slices.Contains(lts, bp.LinkType) {
				lts = append(lts, bp.LinkType)
			}
		}
		blocks = append(blocks, store.NewBlock(sensor, int32(part), b.Seal(), lts))
		if err := w.WriteBlocks(ctx, blocks, time.Hour); err != nil {
			t.Fatal(err)
		}
		// The traffic counters the pipeline keeps: packets and bytes on the wire per second.
		perSecond := map[int64]*store.TrafficRow{}
		for _, f := range frames {
			sec := f.Meta.Timestamp.Unix()
			r := perSecond[sec]
			if r == nil {
				r = &store.TrafficRow{Sensor: sensor, Start: time.Unix(sec, 0), Step: time.Second, Partition: int32(part)}
				perSecond[sec] = r
			}
			r.Add(uint64(f.Meta.OrigLen))
		}
		var rows []store.TrafficRow
		for _, r := range perSecond {
			rows = append(rows, *r)
		}
		if err := w.WriteRollups(ctx, rows, nil, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	return ccfg, ks
}

// capture is a file stored in the lab's keyspace.
type capture struct {
	path        string
	first, last time.Time
	flows       []store.Flow
}

// createFleet makes a CaptureSensor, a PacketPipeline storing into ks and a ReplayJob in lab, with the
// figures the operator would write in their status.
func (l *lab) createFleet(t *testing.T, ks string) {
	t.Helper()
	ctx := context.Background()
	cs := &v1alpha1.CaptureSensor{ObjectMeta: metav1.ObjectMeta{Namespace: labNS, Name: "lab-sensor"},
		Spec: v1alpha1.CaptureSensorSpec{Interfaces: []string{"eth0"}}}
	must(t, l.admin.Create(ctx, cs))
	cs.Status.NodesDesired, cs.Status.NodesReady, cs.Status.Nodes = 2, 2, "2/2"
	cs.Status.PacketsPerSecond, cs.Status.BytesPerSecond = 4321, 2_500_000
	cs.Status.Drops = &v1alpha1.Drops{KernelRing: 7, Total: 7}
	cs.Status.DropPercent = "0.16%"
	cs.Status.PerNode = []v1alpha1.NodeCaptureStatus{
		{Node: "node-a", PacketsPerSecond: 4000, BytesPerSecond: 2_400_000, Drops: v1alpha1.Drops{KernelRing: 7, Total: 7}},
		{Node: "node-b", PacketsPerSecond: 321, BytesPerSecond: 100_000},
	}
	must(t, l.admin.Status().Update(ctx, cs))

	pp := &v1alpha1.PacketPipeline{ObjectMeta: metav1.ObjectMeta{Namespace: labNS, Name: "lab-flows"},
		Spec: v1alpha1.PacketPipelineSpec{Source: v1alpha1.PipelineSource{Sensor: "lab-sensor"},
			Sinks: v1alpha1.PipelineSinks{Cassandra: &v1alpha1.CassandraSink{Packets: true, Flows: true, Keyspace: ks}}}}
	must(t, l.admin.Create(ctx, pp))
	pp.Status.RecordsInPerSecond, pp.Status.RecordsOutPerSecond, pp.Status.ConsumerLag = 4300, 4290, 1234
	must(t, l.admin.Status().Update(ctx, pp))

	rj := &v1alpha1.ReplayJob{ObjectMeta: metav1.ObjectMeta{Namespace: labNS, Name: "lab-replay"},
		Spec: v1alpha1.ReplayJobSpec{Source: v1alpha1.ReplaySource{ConfigMap: &v1alpha1.KeyReference{Name: "c", Key: "http.pcap"}},
			Target: v1alpha1.ReplayTarget{Topic: &v1alpha1.TopicSpec{Name: "lab.packets"}}}}
	must(t, l.admin.Create(ctx, rj))
	l.setReplay(t, 12, 43)
}

// setSensorRate writes the CaptureSensor's total packets/s as the operator would.
func (l *lab) setSensorRate(t *testing.T, pps int64) {
	t.Helper()
	ctx := context.Background()
	cs := &v1alpha1.CaptureSensor{}
	must(t, l.admin.Get(ctx, client.ObjectKey{Namespace: labNS, Name: "lab-sensor"}, cs))
	cs.Status.PacketsPerSecond = pps
	must(t, l.admin.Status().Update(ctx, cs))
}

// setReplay writes the ReplayJob's progress as the operator would.
func (l *lab) setReplay(t *testing.T, sent, total int64) {
	t.Helper()
	ctx := context.Background()
	rj := &v1alpha1.ReplayJob{}
	must(t, l.admin.Get(ctx, client.ObjectKey{Namespace: labNS, Name: "lab-replay"}, rj))
	rj.Status.Phase = v1alpha1.ReplayRunning
	if sent == total {
		rj.Status.Phase = v1alpha1.ReplaySucceeded
	}
	rj.Status.PacketsSent, rj.Status.PacketsTotal = sent, total
	rj.Status.Progress = percent(sent, total)
	must(t, l.admin.Status().Update(ctx, rj))
}

func percent(a, b int64) string { return strconv.FormatInt(a*100/b, 10) + "%" }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
