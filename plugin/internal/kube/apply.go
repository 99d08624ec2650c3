package kube

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// FieldManager owns every field the plugin writes.
const FieldManager = "kubectl-mcsa"

// Action is what a write did to an object, in kubectl's words.
type Action string

// Actions.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	Deleted    Action = "deleted"
	Kept       Action = "kept"
	NotFound   Action = "not found"
)

// Result is one object and what happened to it.
type Result struct {
	Object *unstructured.Unstructured
	Action Action
	// Live is the object as the API server answered an apply (with its UID, even in a server
	// dry run); nil otherwise.
	Live *unstructured.Unstructured
	// In is the cluster written to, when known.
	In *Clients
}

// ToUnstructured converts a typed object (with TypeMeta set) for the dynamic client.
func ToUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	// Server-side apply must not send a creation timestamp or an empty status.
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	return u, nil
}

// ResourceFor is the dynamic client of obj's kind and namespace. A kind unknown to a cached
// discovery (from a CRD just applied) triggers one refresh.
func (c *Clients) ResourceFor(obj *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := obj.GroupVersionKind()
	mapping, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if r, ok := c.Mapper.(meta.ResettableRESTMapper); ok && meta.IsNoMatchError(err) {
		r.Reset()
		mapping, err = c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, err
	}
	r := c.Dynamic.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		return r.Namespace(obj.GetNamespace()), nil
	}
	return r, nil
}

// resourceOf converts obj (typed or unstructured) and finds its dynamic client.
func (c *Clients) resourceOf(obj runtime.Object) (*unstructured.Unstructured, dynamic.ResourceInterface, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		var err error
		if u, err = ToUnstructured(obj); err != nil {
			return nil, nil, err
		}
	}
	r, err := c.ResourceFor(u)
	return u, r, err
}

// Apply server-side applies obj (typed or unstructured) with the plugin's field manager,
// taking over fields others changed (force): re-running a command repairs drift. dryRun, or
// c.DryRun, makes it dry.
func (c *Clients) Apply(ctx context.Context, obj runtime.Object, dryRun bool) (Result, error) {
	u, r, err := c.resourceOf(obj)
	if err != nil {
		return Result{Object: u, In: c}, err
	}
	if c.WritesNothing() {
		return c.dryApply(ctx, u)
	}
	before, err := r.Get(ctx, u.GetName(), metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return Result{Object: u}, c.APIError(err)
	}
	data, err := json.Marshal(u.Object)
	if err != nil {
		return Result{Object: u}, err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: &force, DryRun: c.DryRunOpts(dryRun)}
	after, err := r.Patch(ctx, u.GetName(), types.ApplyPatchType, data, opts)
	if err != nil {
		return Result{Object: u}, fmt.Errorf("applying %s %s in %s: %w", u.GetKind(), u.GetName(), c.Describe(), c.APIError(err))
	}
	res := Result{Object: u, Action: Unchanged, Live: after, In: c}
	switch {
	case before == nil:
		res.Action = Created
	case before.GetResourceVersion() != after.GetResourceVersion():
		res.Action = Configured
	}
	return res, nil
}

// Delete deletes obj, reporting NotFound rather than failing when it is already gone. dryRun,
// or c.DryRun, makes it dry.
func (c *Clients) Delete(ctx context.Context, obj runtime.Object, dryRun bool) (Result, error) {
	u, r, err := c.resourceOf(obj)
	if meta.IsNoMatchError(err) {
		return Result{Object: u, Action: NotFound, In: c}, nil
	}
	if err != nil {
		return Result{Object: u, In: c}, err
	}
	if c.WritesNothing() {
		return c.dryDelete(ctx, u)
	}
	policy := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &policy, DryRun: c.DryRunOpts(dryRun)}
	err = r.Delete(ctx, u.GetName(), opts)
	switch {
	case apierrors.IsNotFound(err):
		return Result{Object: u, Action: NotFound, In: c}, nil
	case err != nil:
		return Result{Object: u, In: c}, fmt.Errorf("deleting %s %s in %s: %w", u.GetKind(), u.GetName(), c.Describe(), c.APIError(err))
	}
	return Result{Object: u, Action: Deleted, In: c}, nil
}
