// Package controllers holds one reconciler per capfleet kind and the pieces they share.
package controllers

import (
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"capfleet.dev/capfleet/controllers/children"
	"capfleet.dev/capfleet/controllers/topics"
)

// kafkaRetry is how soon a reconcile that could not reach Kafka tries again.
const kafkaRetry = 30 * time.Second

// Setup registers every capfleet reconciler with the manager. t tends Kafka topics; nil leaves them alone.
func Setup(mgr ctrl.Manager, o children.Options, t *topics.Manager) error {
	c := mgr.GetClient()
	if err := (&CaptureSensorReconciler{Client: c, Recorder: mgr.GetEventRecorderFor("capturesensor-controller"), Options: o, Topics: t}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&ReplayJobReconciler{Client: c, Recorder: mgr.GetEventRecorderFor("replayjob-controller"), Options: o}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&PacketPipelineReconciler{Client: c, Recorder: mgr.GetEventRecorderFor("packetpipeline-controller"), Options: o, Topics: t}).SetupWithManager(mgr)
}
