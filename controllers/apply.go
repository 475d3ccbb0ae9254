package controllers

import (
	"context"
	"fmt"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/controllers/children"
)

// Every kind's children are watched and applied; a replay's Jobs of earlier specs are deleted.
// +kubebuilder:rbac:groups=apps,resources=daemonsets;deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;update;patch;delete

// applyChild server-side applies a built child under capfleet's field manager, taking back any field someone
// else changed, and records an event when the apply changed something a user may want to know about.
func applyChild(ctx context.Context, c client.Client, rec record.EventRecorder, owner client.Object, child client.Object) error {
	before := child.DeepCopyObject().(client.Object)
	err := c.Get(ctx, client.ObjectKeyFromObject(child), before)
	if err != nil && !apierrors.IsNotFound(err) {
		// Not knowing whether it exists, the event below would say "Created" over an existing child.
		return fmt.Errorf("read %s %s before applying it: %w", child.GetObjectKind().GroupVersionKind().Kind, child.GetName(), err)
	}
	existed := err == nil
	if err := c.Patch(ctx, child, client.Apply, client.FieldOwner(children.FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply %s %s: %w", child.GetObjectKind().GroupVersionKind().Kind, child.GetName(), err)
	}
	kind := child.GetObjectKind().GroupVersionKind().Kind
	switch {
	case !existed:
		rec.Eventf(owner, "Normal", "Created", "Created %s %s", kind, child.GetName())
	case before.GetResourceVersion() != child.GetResourceVersion():
		rec.Eventf(owner, "Normal", "Updated", "Updated %s %s to match the spec", kind, child.GetName())
	}
	return nil
}
