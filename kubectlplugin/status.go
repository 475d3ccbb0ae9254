package kubectlplugin

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
)

func statusCommand(k *kube) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Each CaptureSensor, PacketPipeline, ReplayJob and FlowCollector with its children, nodes and figures",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := k.client()
			if err != nil {
				return err
			}
			if k.allNamespaces {
				ns = ""
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return printStatus(cmd.Context(), cmd.OutOrStdout(), c, ns, name, time.Now())
		},
	}
	cmd.Flags().BoolVarP(&k.allNamespaces, "all-namespaces", "A", false, "every namespace")
	return cmd
}

// printStatus writes one block per resource: a headline with its Ready condition and figures, then a
// line per child and per node. A resource whose children cannot be read still prints its own status.
func printStatus(ctx context.Context, out io.Writer, c client.Client, ns, name string, now time.Time) error {
	var (
		sensors   v1alpha1.CaptureSensorList
		pipelines v1alpha1.PacketPipelineList
		replays   v1alpha1.ReplayJobList
		fcs       v1alpha1.FlowCollectorList
	)
	for _, l := range []client.ObjectList{&sensors, &pipelines, &replays, &fcs} {
		if err := c.List(ctx, l, client.InNamespace(ns)); err != nil {
			return fmt.Errorf("listing %T: %w", l, err)
		}
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	shown := 0
	for i := range sensors.Items {
		s := &sensors.Items[i]
		if name != "" && s.Name != name {
			continue
		}
		shown++
		st := &s.Status
		fmt.Fprintf(w, "CaptureSensor %s/%s\t%s\tnodes %d/%d\t%s pkt/s\t%s/s\tdrops %s\n", s.Namespace, s.Name,
			ready(st.Conditions, s.Generation, st.ObservedGeneration), st.NodesReady, st.NodesDesired,
			count(st.PacketsPerSecond), byteSize(st.BytesPerSecond), dropText(st.Drops, st.DropPercent))
		if st.DaemonSet != "" {
			fmt.Fprintf(w, "  DaemonSet %s\t%s\n", st.DaemonSet, daemonSetState(ctx, c, s.Namespace, st.DaemonSet))
		}
		for _, t := range st.Topics {
			fmt.Fprintf(w, "  topic %s\t%s\n", t.Name, topicState(t))
		}
		for _, n := range st.PerNode {
			fmt.Fprintf(w, "  node %s\t%s pkt/s\t%s/s\tdrops %d\t%s\n", n.Node, count(n.PacketsPerSecond),
				byteSize(n.BytesPerSecond), n.Drops.Total, heartbeatAge(n.LastHeartbeat, now))
		}
	}
	for i := range pipelines.Items {
		p := &pipelines.Items[i]
		if name != "" && p.Name != name {
			continue
		}
		shown++
		st := &p.Status
		fmt.Fprintf(w, "PacketPipeline %s/%s\t%s\treplicas %d/%d\tin %s rec/s\tout %s rec/s\tlag %s\terrors %d\n",
			p.Namespace, p.Name, ready(st.Conditions, p.Generation, st.ObservedGeneration), st.ReadyReplicas,
			st.Replicas, count(st.RecordsInPerSecond), count(st.RecordsOutPerSecond), count(st.ConsumerLag), st.Errors)
		if st.Deployment != "" {
			fmt.Fprintf(w, "  Deployment %s\t%s\n", st.Deployment, deploymentState(ctx, c, p.Namespace, st.Deployment))
		}
		if st.SourceTopic != "" {
			fmt.Fprintf(w, "  source topic %s\n", st.SourceTopic)
		}
		for _, t := range st.Topics {
			fmt.Fprintf(w, "  topic %s\t%s\n", t.Name, topicState(t))
		}
		fmt.Fprintf(w, "  flows\tactive %d\tevicted early %d\tfiltered %d\tdecode errors %d\tsink errors %d\n",
			st.ActiveFlows, st.Drops, st.Filtered, st.DecodeErrors, st.SinkErrors)
	}
	for i := range replays.Items {
		r := &replays.Items[i]
		if name != "" && r.Name != name {
			continue
		}
		shown++
		st := &r.Status
		fmt.Fprintf(w, "ReplayJob %s/%s\t%s\t%s\t%s\t%s of %s packets\t%s pkt/s\tfailed %d\n", r.Namespace, r.Name,
			ready(st.Conditions, r.Generation, st.ObservedGeneration), orDash(string(st.Phase)), progressBar(st.PacketsSent, st.PacketsTotal),
			count(st.PacketsSent), count(st.PacketsTotal), count(st.PacketsPerSecond), st.Failed)
		if st.Job != "" {
			fmt.Fprintf(w, "  Job %s\t%s\n", st.Job, jobState(ctx, c, r.Namespace, st.Job))
		}
	}
	for i := range fcs.Items {
		f := &fcs.Items[i]
		if name != "" && f.Name != name {
			continue
		}
		shown++
		st := &f.Status
		fmt.Fprintf(w, "FlowCollector %s/%s\t%s\treplicas %d/%d\t%s rec/s\texporters %d\tsequence gaps %d\ttemplate errors %d\tdrops %d\n",
			f.Namespace, f.Name, ready(st.Conditions, f.Generation, st.ObservedGeneration), st.ReadyReplicas, st.Replicas,
			count(st.RecordsPerSecond), st.Exporters, st.SequenceGaps, st.TemplateErrors, st.Drops)
		if st.Deployment != "" {
			fmt.Fprintf(w, "  Deployment %s\t%s\n", st.Deployment, deploymentState(ctx, c, f.Namespace, st.Deployment))
		}
		if st.Service != "" {
			fmt.Fprintf(w, "  Service %s (UDP)\n", st.Service)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if shown == 0 {
		where := "namespace " + ns
		if ns == "" {
			where = "any namespace"
		}
		if name != "" {
			return fmt.Errorf("no CaptureSensor, PacketPipeline, ReplayJob or FlowCollector named %q in %s", name, where)
		}
		fmt.Fprintf(out, "No capfleet resources in %s.\n", where)
	}
	return nil
}

// ready is the Ready condition as kstatus reads it: a status not yet written for the current
// generation is "Reconciling", whatever its conditions say.
func ready(conds []metav1.Condition, gen, observed int64) string {
	if observed != gen {
		return "Reconciling (generation not observed yet)"
	}
	c := meta.FindStatusCondition(conds, "Ready")
	if c == nil {
		return "Ready=Unknown"
	}
	if c.Status == metav1.ConditionTrue {
		return "Ready"
	}
	return fmt.Sprintf("NotReady %s: %s", c.Reason, c.Message)
}

func dropText(d *v1alpha1.Drops, pct string) string {
	if d == nil {
		return "-"
	}
	s := count(d.Total)
	if pct != "" {
		s += " (" + pct + ")"
	}
	var causes []string
	for _, c := range []struct {
		n string
		v int64
	}{{"kernel ring", d.KernelRing}, {"interface", d.Interface}, {"sensor queue", d.SensorQueue}, {"kafka", d.KafkaProduce}} {
		if c.v != 0 {
			causes = append(causes, fmt.Sprintf("%s %d", c.n, c.v))
		}
	}
	if len(causes) > 0 {
		s += " " + strings.Join(causes, ", ")
	}
	return s
}

func topicState(t v1alpha1.TopicStatus) string {
	s := fmt.Sprintf("%d partitions", t.Partitions)
	if t.ReplicationFactor > 0 {
		s += fmt.Sprintf(", replication %d", t.ReplicationFactor)
	}
	if t.Message != "" {
		s += ": " + t.Message
	}
	return s
}

func heartbeatAge(t *metav1.Time, now time.Time) string {
	if t == nil {
		return "no heartbeat yet"
	}
	return "heartbeat " + now.Sub(t.Time).Round(time.Second).String() + " ago"
}

func daemonSetState(ctx context.Context, c client.Client, ns, name string) string {
	var ds appsv1.DaemonSet
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &ds); err != nil {
		return childError(err)
	}
	return fmt.Sprintf("%d/%d ready, %d up to date", ds.Status.NumberReady, ds.Status.DesiredNumberScheduled, ds.Status.UpdatedNumberScheduled)
}

func deploymentState(ctx context.Context, c client.Client, ns, name string) string {
	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
		return childError(err)
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return fmt.Sprintf("%d/%d ready", d.Status.ReadyReplicas, want)
}

func jobState(ctx context.Context, c client.Client, ns, name string) string {
	var j batchv1.Job
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &j); err != nil {
		return childError(err)
	}
	return fmt.Sprintf("%d active, %d succeeded, %d failed", j.Status.Active, j.Status.Succeeded, j.Status.Failed)
}

func childError(err error) string {
	if apierrors.IsNotFound(err) {
		return "not found"
	}
	return "unreadable: " + err.Error()
}

// progressBar draws sent/total in 20 cells, as `kubectl get replayjobs` shows the percentage.
func progressBar(sent, total int64) string {
	if total <= 0 {
		return "[" + strings.Repeat(".", 20) + "]   ?%"
	}
	f := float64(sent) / float64(total)
	if f > 1 {
		f = 1
	}
	n := int(f * 20)
	return fmt.Sprintf("[%s%s] %3.0f%%", strings.Repeat("#", n), strings.Repeat(".", 20-n), f*100)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// count writes an integer with thousands separators.
func count(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func byteSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, u := float64(n), "kMGTPE"
	i := -1
	for f >= unit && i < len(u)-1 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %cB", f, u[i])
}
