package kube_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube/kubefake"
)

func role(rules ...rbacv1.PolicyRule) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default"},
		Rules:      rules,
	}
}

var (
	listPods = rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}
	getPods  = rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}
)

func TestApply(t *testing.T) {
	ctx := context.Background()
	c := kubefake.New("cluster1")
	c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	cl := c.Clients()

	steps := []struct {
		name   string
		obj    *rbacv1.Role
		dryRun bool
		want   kube.Action
		rules  int
	}{
		{"creates", role(listPods), false, kube.Created, 1},
		{"again changes nothing", role(listPods), false, kube.Unchanged, 1},
		{"dry run reports the change and stores nothing", role(listPods, getPods), true, kube.Configured, 1},
		{"repairs drift", role(listPods, getPods), false, kube.Configured, 2},
	}
	for _, s := range steps {
		res, err := cl.Apply(ctx, s.obj, s.dryRun)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if res.Action != s.want || res.Object.GetName() != "r" || res.Object.GetKind() != "Role" {
			t.Errorf("%s: %s %s/%s, want %s", s.name, res.Action, res.Object.GetKind(), res.Object.GetName(), s.want)
		}
		got, err := cl.Kube.RbacV1().Roles("default").Get(ctx, "r", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if len(got.Rules) != s.rules {
			t.Errorf("%s: the stored role has %d rules, want %d", s.name, len(got.Rules), s.rules)
		}
	}
}

func TestApplyErrors(t *testing.T) {
	ctx := context.Background()
	cl := kubefake.New("cluster1").Clients()
	_, err := cl.Apply(ctx, role(listPods), false)
	if err == nil || !strings.Contains(err.Error(), `applying Role r in context "cluster1"`) || !strings.Contains(err.Error(), `namespaces "default" not found`) {
		t.Errorf("apply in a missing namespace: %v", err)
	}
	unknown := &unstructured.Unstructured{}
	unknown.SetGroupVersionKind(schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"})
	unknown.SetName("w")
	if _, err := cl.Apply(ctx, unknown, false); err == nil || !strings.Contains(err.Error(), "Widget") {
		t.Errorf("apply of an unknown kind: %v", err)
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	c := kubefake.New("cluster1")
	c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, role(listPods))
	cl := c.Clients()

	res, err := cl.Delete(ctx, role(), true)
	if err != nil || res.Action != kube.Deleted {
		t.Fatalf("dry run: %v %v", res.Action, err)
	}
	if c.Object(rbacv1.SchemeGroupVersion.WithKind("Role"), "default", "r") == nil {
		t.Fatal("a dry-run deletion deleted")
	}
	if res, err = cl.Delete(ctx, role(), false); err != nil || res.Action != kube.Deleted {
		t.Fatalf("delete: %v %v", res.Action, err)
	}
	if c.Object(rbacv1.SchemeGroupVersion.WithKind("Role"), "default", "r") != nil {
		t.Fatal("not deleted")
	}
	if res, err = cl.Delete(ctx, role(), false); err != nil || res.Action != kube.NotFound {
		t.Fatalf("delete of a missing object: %v %v", res.Action, err)
	}
	// A kind the cluster does not serve (a CRD not installed) has nothing to delete either.
	unknown := &unstructured.Unstructured{}
	unknown.SetGroupVersionKind(schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"})
	unknown.SetName("w")
	if res, err = cl.Delete(ctx, unknown, false); err != nil || res.Action != kube.NotFound {
		t.Fatalf("delete of an unknown kind: %v %v", res.Action, err)
	}
}
