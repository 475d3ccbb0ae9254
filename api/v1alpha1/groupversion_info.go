// Package v1alpha1 holds the capture.capfleet.dev/v1alpha1 API: CaptureSensor, ReplayJob and PacketPipeline.
// +kubebuilder:object:generate=true
// +groupName=capture.capfleet.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every capfleet resource.
	GroupVersion = schema.GroupVersion{Group: "capture.capfleet.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the capfleet types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the capfleet types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
