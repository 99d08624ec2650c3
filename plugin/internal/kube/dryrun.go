package kube

import (
	"context"
	"fmt"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// DryRun is kubectl's --dry-run: how writes through a Clients are made dry.
type DryRun string

// Dry runs: none writes; client reads the cluster and writes nothing; server sends every write
// with dryRun=All, so that the API server validates it (admission included) and stores nothing.
const (
	NoDryRun     DryRun = ""
	ClientDryRun DryRun = "client"
	ServerDryRun DryRun = "server"
)

// ParseDryRun reads --dry-run's value as kubectl does: none, client or server.
func ParseDryRun(s string) (DryRun, error) {
	switch s {
	case "none", "":
		return NoDryRun, nil
	case "client":
		return ClientDryRun, nil
	case "server":
		return ServerDryRun, nil
	}
	return NoDryRun, fmt.Errorf(`--dry-run must be "none", "client" or "server", not %q`, s)
}

// DryRunOpts is the dryRun option of a write through c that is sent (server is true when the
// caller asks for a server dry run itself): nil, or dryRun=All.
func (c *Clients) DryRunOpts(server bool) []string {
	if server || c.DryRun == ServerDryRun {
		return []string{metav1.DryRunAll}
	}
	return nil
}

// WritesNothing tells whether c is in a client dry run: engines then read, and do not send,
// their writes.
func (c *Clients) WritesNothing() bool { return c.DryRun == ClientDryRun }

// dryApply is Apply in a client dry run: whether obj would be created, would change the live
// object (a field of obj differs from it) or not, without writing.
func (c *Clients) dryApply(ctx context.Context, u *unstructured.Unstructured) (Result, error) {
	res := Result{Object: u, Action: Created, In: c}
	r, err := c.ResourceFor(u)
	if err != nil {
		return res, err
	}
	live, err := r.Get(ctx, u.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return res, nil
	case err != nil:
		return res, c.APIError(err)
	}
	res.Action = Configured
	if Contains(live.Object, u.Object) {
		res.Action = Unchanged
	}
	return res, nil
}

// dryDelete is Delete in a client dry run: whether obj exists to be deleted.
func (c *Clients) dryDelete(ctx context.Context, u *unstructured.Unstructured) (Result, error) {
	res := Result{Object: u, Action: Deleted, In: c}
	r, err := c.ResourceFor(u)
	if err != nil {
		return Result{Object: u, Action: NotFound, In: c}, nil // a kind the cluster does not serve
	}
	switch _, err := r.Get(ctx, u.GetName(), metav1.GetOptions{}); {
	case apierrors.IsNotFound(err):
		res.Action = NotFound
	case err != nil:
		return Result{Object: u, In: c}, c.APIError(err)
	}
	return res, nil
}

// Contains tells whether every field set in want has the same value in have: maps key by key,
// lists of the same length element by element (the server defaults fields inside them), anything
// else as a whole. Nulls in want, unset fields of an applied configuration, match anything.
func Contains(have, want any) bool {
	switch w := want.(type) {
	case nil:
		return true
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return len(w) == 0 && have == nil
		}
		for k, v := range w {
			if !Contains(h[k], v) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		for i := range w {
			if !Contains(h[i], w[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(have, want)
}

// ServerFields are what the API server sets on every object: a printed object that is to be
// applied elsewhere (kept in Git, say) must not carry them.
var ServerFields = [][]string{
	{"metadata", "uid"}, {"metadata", "resourceVersion"}, {"metadata", "creationTimestamp"},
	{"metadata", "managedFields"}, {"metadata", "generation"}, {"metadata", "selfLink"},
	{"metadata", "deletionTimestamp"}, {"metadata", "deletionGracePeriodSeconds"}, {"status"},
}

// WithoutServerFields is a copy of u without ServerFields.
func WithoutServerFields(u *unstructured.Unstructured) *unstructured.Unstructured {
	out := u.DeepCopy()
	for _, f := range ServerFields {
		unstructured.RemoveNestedField(out.Object, f...)
	}
	return out
}
