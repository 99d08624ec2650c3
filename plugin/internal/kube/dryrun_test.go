package kube_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube/kubefake"
)

func TestParseDryRun(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    kube.DryRun
		wantErr bool
	}{
		{"none", kube.NoDryRun, false},
		{"", kube.NoDryRun, false},
		{"client", kube.ClientDryRun, false},
		{"server", kube.ServerDryRun, false},
		{"true", kube.NoDryRun, true},
		{"Client", kube.NoDryRun, true},
	} {
		got, err := kube.ParseDryRun(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseDryRun(%q) = %q, %v", tt.in, got, err)
		}
	}
}

// TestClientsDryRun: the clients' dry run makes Apply and Delete dry, whatever their caller asks:
// client reads only, server sends with dryRun; neither stores anything.
func TestClientsDryRun(t *testing.T) {
	ctx := context.Background()
	roleKind := rbacv1.SchemeGroupVersion.WithKind("Role")
	for _, tt := range []struct {
		name     string
		dryRun   kube.DryRun
		existing *rbacv1.Role
		apply    *rbacv1.Role
		want     kube.Action
		wantDel  kube.Action
	}{
		{"client: would create", kube.ClientDryRun, nil, role(listPods), kube.Created, kube.NotFound},
		{"client: would configure", kube.ClientDryRun, role(listPods), role(listPods, getPods), kube.Configured, kube.Deleted},
		{"client: unchanged", kube.ClientDryRun, role(listPods), role(listPods), kube.Unchanged, kube.Deleted},
		{"server: would create", kube.ServerDryRun, nil, role(listPods), kube.Created, kube.NotFound},
		{"server: would configure", kube.ServerDryRun, role(listPods), role(listPods, getPods), kube.Configured, kube.Deleted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := kubefake.New("cluster1")
			c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
			if tt.existing != nil {
				c.Add(tt.existing)
			}
			before := c.Object(roleKind, "default", "r")
			cl := c.Clients()
			cl.DryRun = tt.dryRun
			res, err := cl.Apply(ctx, tt.apply, false)
			if err != nil || res.Action != tt.want || res.In != cl {
				t.Fatalf("apply: %s, %v (in the clients: %t), want %s", res.Action, err, res.In == cl, tt.want)
			}
			if res.Object.GetName() != "r" || len(res.Object.Object["rules"].([]any)) != len(tt.apply.Rules) {
				t.Errorf("the result's object is not the one applied: %v", res.Object.Object)
			}
			del, err := cl.Delete(ctx, role(), false)
			if err != nil || del.Action != tt.wantDel {
				t.Fatalf("delete: %s, %v, want %s", del.Action, err, tt.wantDel)
			}
			after := c.Object(roleKind, "default", "r")
			if (before == nil) != (after == nil) || before != nil && after.GetResourceVersion() != before.GetResourceVersion() {
				t.Errorf("a dry run wrote: %v → %v", before, after)
			}
			for _, a := range c.Kube.Actions() {
				if v := a.GetVerb(); tt.dryRun == kube.ClientDryRun && v != "get" && v != "list" {
					t.Errorf("a client dry run sent a %s", v)
				}
			}
			for _, a := range c.Dynamic.Actions() {
				if v := a.GetVerb(); tt.dryRun == kube.ClientDryRun && v != "get" && v != "list" {
					t.Errorf("a client dry run sent a %s", v)
				}
			}
		})
	}
}

func TestContains(t *testing.T) {
	have := map[string]any{"metadata": map[string]any{"name": "x", "uid": "u", "labels": map[string]any{"a": "1", "b": "2"}},
		"rules": []any{map[string]any{"verbs": []any{"get"}, "apiGroups": []any{""}}}, "n": int64(3)}
	for _, tt := range []struct {
		name string
		want any
		ok   bool
	}{
		{"subset", map[string]any{"metadata": map[string]any{"name": "x", "labels": map[string]any{"a": "1"}}}, true},
		{"null matches", map[string]any{"metadata": map[string]any{"creationTimestamp": nil}}, true},
		{"list elements as subsets", map[string]any{"rules": []any{map[string]any{"verbs": []any{"get"}}}}, true},
		{"other value", map[string]any{"metadata": map[string]any{"name": "y"}}, false},
		{"missing field", map[string]any{"spec": map[string]any{"x": "y"}}, false},
		{"longer list", map[string]any{"rules": []any{map[string]any{}, map[string]any{}}}, false},
		{"other number", map[string]any{"n": int64(4)}, false},
	} {
		if got := kube.Contains(have, tt.want); got != tt.ok {
			t.Errorf("%s: Contains = %t", tt.name, got)
		}
	}
}

func TestWithoutServerFields(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "x", "namespace": "n", "uid": "u", "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z",
			"generation": int64(1), "managedFields": []any{map[string]any{}}, "labels": map[string]any{"a": "b"}},
		"data": map[string]any{"k": "v"}, "status": map[string]any{}}}
	got := kube.WithoutServerFields(u)
	want := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "x", "namespace": "n", "labels": map[string]any{"a": "b"}},
		"data": map[string]any{"k": "v"}}
	if !kube.Contains(got.Object, want) || !kube.Contains(want, got.Object) {
		t.Errorf("got %v", got.Object)
	}
	if u.GetUID() != "u" {
		t.Error("the original changed")
	}
}
