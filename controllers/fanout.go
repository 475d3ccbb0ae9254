package controllers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/controllers/children"
)

// ReasonFanoutShared: two sensors on one node use the same PACKET_FANOUT group ids.
const ReasonFanoutShared = "FanoutGroupShared"

// A PACKET_FANOUT group is known to the kernel by its id alone, within the node's network namespace: two
// sensors that join the same id on the same interface form one group, and the kernel hands each packet to one
// of them, so each quietly captures only a part. (Interface i of a sensor uses ring.fanoutGroup + i.) Which
// nodes two sensors share is known only once their pods are placed, so the check looks at the pods.

// fanoutIDs are the first and last group ids a sensor's rings join; on is false without fanout.
func fanoutIDs(cs *v1alpha1.CaptureSensor) (first, last int32, on bool) {
	g := cs.Spec.Ring.FanoutGroup
	if g == 0 {
		return 0, 0, false
	}
	return g, g + int32(len(cs.Spec.Interfaces)) - 1, true
}

// sensorNodes are the nodes a sensor's pods are placed on.
func sensorNodes(ctx context.Context, c client.Reader, cs *v1alpha1.CaptureSensor) ([]string, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(cs.Namespace), client.MatchingLabels(children.PodSelector(children.ComponentSensor, cs.Name))); err != nil {
		return nil, err
	}
	var nodes []string
	for _, p := range pods.Items {
		if p.Spec.NodeName != "" && p.DeletionTimestamp == nil && !slices.Contains(nodes, p.Spec.NodeName) {
			nodes = append(nodes, p.Spec.NodeName)
		}
	}
	sort.Strings(nodes)
	return nodes, nil
}

// checkFanout stalls the younger of two sensors whose fanout group ids overlap on a node they share, naming
// the other sensor and the nodes; the older one keeps running as it is.
func (r *CaptureSensorReconciler) checkFanout(ctx context.Context, cs *v1alpha1.CaptureSensor, p *pass) error {
	first, last, on := fanoutIDs(cs)
	if !on || r.pods == nil || p.trouble != nil {
		return nil
	}
	var all v1alpha1.CaptureSensorList
	if err := r.List(ctx, &all); err != nil {
		return err
	}
	var mine []string
	for i := range all.Items {
		o := &all.Items[i]
		oFirst, oLast, oOn := fanoutIDs(o)
		if o.UID == cs.UID || !oOn || oLast < first || oFirst > last || !claimantOf(o, 0).olderThan(claimantOf(cs, 0)) {
			continue
		}
		if mine == nil {
			var err error
			if mine, err = sensorNodes(ctx, r.pods.pods, cs); err != nil || len(mine) == 0 {
				return err
			}
		}
		theirs, err := sensorNodes(ctx, r.pods.pods, o)
		if err != nil {
			return err
		}
		var shared []string
		for _, n := range mine {
			if slices.Contains(theirs, n) {
				shared = append(shared, n)
			}
		}
		if len(shared) == 0 {
			continue
		}
		shares := &outcome{stalled: true, reason: ReasonFanoutShared, message: fmt.Sprintf(
			"ring.fanoutGroup %d (ids %d-%d) overlaps CaptureSensor %s/%s's (ids %d-%d) on node(s) %s: sensors in one "+
				"fanout group split the packets between them; give this sensor a ring.fanoutGroup of its own",
			cs.Spec.Ring.FanoutGroup, first, last, o.Namespace, o.Name, oFirst, oLast, strings.Join(shared, ", "))}
		p.trouble = shares
		if c := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Message != shares.message {
			r.Recorder.Eventf(cs, corev1.EventTypeWarning, shares.reason, "%s", shares.message)
		}
		return nil
	}
	return nil
}
