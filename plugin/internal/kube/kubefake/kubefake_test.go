package kubefake

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// TestEmulation pins the API server behaviours the engines' tests rely on.
func TestEmulation(t *testing.T) {
	ctx := context.Background()
	c := New("c")
	c.Now = func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	saiRes := c.Dynamic.Resource(v1alpha1.Resource).Namespace("default")
	apply := func(spec string, dryRun bool) (rv string, generation int64, err error) {
		opts := metav1.PatchOptions{FieldManager: "test", Force: ptr.To(true)}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		u, err := saiRes.Patch(ctx, "x", types.ApplyPatchType, []byte(`{"apiVersion":"multicluster.admiralty.io/v1alpha1","kind":"ServiceAccountImport","metadata":{"name":"x","creationTimestamp":null},"spec":`+spec+`}`), opts)
		if err != nil {
			return "", 0, err
		}
		return u.GetResourceVersion(), u.GetGeneration(), nil
	}

	if _, _, err := apply(`{"clusterName":"c2","namespace":"default","name":"sa"}`, false); !apierrors.IsNotFound(err) {
		t.Fatalf("apply without the namespace: %v", err)
	}
	c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	rv1, gen, err := apply(`{"clusterName":"c2","namespace":"default","name":"sa","expirationSeconds":3600}`, false)
	if err != nil || gen != 1 {
		t.Fatalf("create: %v, generation %d", err, gen)
	}
	// The typed client reads what the dynamic one wrote.
	typed := &v1alpha1.ServiceAccountImport{}
	if u, err := saiRes.Get(ctx, "x", metav1.GetOptions{}); err != nil || !u.GetCreationTimestamp().Time.Equal(c.Now()) || u.GetUID() == "" {
		t.Fatalf("get: %v %v", u, err)
	}
	rv2, gen, err := apply(`{"clusterName":"c2","namespace":"default","name":"sa","expirationSeconds":3600}`, false)
	if err != nil || rv2 != rv1 || gen != 1 {
		t.Errorf("same apply: resourceVersion %s → %s, generation %d, %v", rv1, rv2, gen, err)
	}
	if _, gen, err = apply(`{"clusterName":"c2","namespace":"default","name":"other"}`, true); err != nil || gen != 2 {
		t.Errorf("dry run: generation %d, %v", gen, err)
	}
	// The applier's fields are replaced: the lifetime it no longer sends is gone.
	rv3, gen, err := apply(`{"clusterName":"c2","namespace":"default","name":"other"}`, false)
	if err != nil || rv3 == rv2 || gen != 2 {
		t.Errorf("change: resourceVersion %s → %s, generation %d, %v", rv2, rv3, gen, err)
	}
	u := c.Object(v1alpha1.GroupVersion.WithKind("ServiceAccountImport"), "default", "x")
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, typed); err != nil || typed.Spec.Name != "other" || typed.Spec.ExpirationSeconds != nil {
		t.Errorf("stored %+v, %v", typed.Spec, err)
	}

	// A merge patch with a stale resourceVersion conflicts.
	_, err = saiRes.Patch(ctx, "x", types.MergePatchType, []byte(`{"metadata":{"resourceVersion":"`+rv1+`","annotations":{"a":"b"}}}`), metav1.PatchOptions{})
	if !apierrors.IsConflict(err) {
		t.Errorf("stale merge patch: %v", err)
	}

	// Typed writes are seen by the dynamic client, and the same object typed compares equal.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sa", Namespace: "default"}}
	created, err := c.Kube.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	updated, err := c.Kube.CoreV1().ServiceAccounts("default").Update(ctx, created, metav1.UpdateOptions{})
	if err != nil || updated.Generation != 1 {
		t.Errorf("update without change: generation %d, %v", updated.Generation, err)
	}
	tr, err := c.Kube.CoreV1().ServiceAccounts("default").CreateToken(ctx, "sa", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	if err != nil || !strings.HasSuffix(tr.Status.Token, "."+TokenID(1, "default", "sa", "c")) || !tr.Status.ExpirationTimestamp.Time.Equal(c.Now().Add(10*time.Minute)) {
		t.Errorf("token: %+v, %v", tr.Status, err)
	}
	if _, err := c.Kube.CoreV1().ServiceAccounts("default").CreateToken(ctx, "ghost", &authenticationv1.TokenRequest{}, metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("token of a missing service account: %v", err)
	}

	// An API not served: NotFound without a name, as for a missing CRD.
	c.Unserve(v1alpha1.Resource)
	_, err = saiRes.Get(ctx, "x", metav1.GetOptions{})
	var status apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &status) || status.Status().Details.Name != "" {
		t.Errorf("unserved: %v", err)
	}
	if _, err := c.mapper.RESTMapping(v1alpha1.GroupVersion.WithKind("ServiceAccountImport").GroupKind()); err == nil {
		t.Error("the mapper still maps the unserved kind")
	}
}
