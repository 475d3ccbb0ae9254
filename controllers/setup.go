// Package controllers holds one reconciler per capfleet kind and the pieces they share.
package controllers

import (
	ctrl "sigs.k8s.io/controller-runtime"

	"capfleet.dev/capfleet/controllers/children"
)

// Setup registers every capfleet reconciler with the manager.
func Setup(mgr ctrl.Manager, o children.Options) error {
	c := mgr.GetClient()
	if err := (&CaptureSensorReconciler{Client: c, Recorder: mgr.GetEventRecorderFor("capturesensor-controller"), Options: o}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&ReplayJobReconciler{Client: c, Recorder: mgr.GetEventRecorderFor("replayjob-controller"), Options: o}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&PacketPipelineReconciler{Client: c, Recorder: mgr.GetEventRecorderFor("packetpipeline-controller"), Options: o}).SetupWithManager(mgr)
}
