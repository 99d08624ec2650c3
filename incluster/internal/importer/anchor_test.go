package importer

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
	"k8s.io/apimachinery/pkg/runtime/schema"
	clienttesting "k8s.io/client-go/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
)

// anchors makes the fake remote behave as an API server does with bound tokens: it records the
// bound object of every TokenRequest and answers 404 (for a secret) while the anchor is missing.
type anchors struct {
	bound   []*authenticationv1.BoundObjectReference
	missing bool
}

func (f *fixture) withAnchors() *anchors {
	a := &anchors{}
	f.remote.PrependReactor("create", "serviceaccounts", func(act clienttesting.Action) (bool, runtime.Object, error) {
		if act.GetSubresource() != "token" || f.remoteErr != nil {
			return false, nil, nil
		}
		ref := act.(clienttesting.CreateAction).GetObject().(*authenticationv1.TokenRequest).Spec.BoundObjectRef
		a.bound = append(a.bound, ref)
		if ref != nil && a.missing {
			return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, ref.Name)
		}
		return false, nil, nil
	})
	return a
}

func (f *fixture) requestRefresh(value string) {
	f.t.Helper()
	imp := f.get()
	if imp.Annotations == nil {
		imp.Annotations = map[string]string{}
	}
	imp.Annotations[v1alpha1.RefreshRequestedAnnotation] = value
	f.update(imp)
}

// TestTokensAreBoundToTheAnchor: every token is requested bound to the grant's anchor, by name.
func TestTokensAreBoundToTheAnchor(t *testing.T) {
	f := newFixture(t, newImport(testImport, "cluster2", "team", "sa"))
	a := f.withAnchors()
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	want := authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: grant.AnchorName("cluster1", "sa")}
	if len(a.bound) != 1 || a.bound[0] == nil || *a.bound[0] != want {
		t.Fatalf("bound objects = %+v, want %+v", a.bound, want)
	}
}

// TestRefusedRefreshClearsToken: when B refuses a refresh (anchor deleted, grant removed,
// namespace no longer allowed), the token issued before leaves the import's secret at once,
// the secret stays, and the import recovers once B allows it again.
func TestRefusedRefreshClearsToken(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "serviceaccounts"}, "sa", errors.New("RBAC"))
	tests := []struct {
		name       string
		refuse     func(*fixture, *anchors)
		wantReason string
		wantInMsg  string
	}{{
		name: "anchor missing", refuse: func(_ *fixture, a *anchors) { a.missing = true },
		wantReason: v1alpha1.ReasonGrantAnchorMissing, wantInMsg: "To re-create it, run `kubectl mcsa allow cluster1 team/sa --context cluster2`.",
	}, {
		name: "forbidden", refuse: func(f *fixture, _ *anchors) { f.remoteErr = forbidden },
		wantReason: v1alpha1.ReasonForbidden, wantInMsg: "`kubectl mcsa allow cluster1 team/sa --context cluster2`",
	}, {
		name: "namespace not allowed", refuse: func(f *fixture, _ *anchors) {
			sa, _ := f.remote.CoreV1().ServiceAccounts("team").Get(context.Background(), "sa", metav1.GetOptions{})
			sa.Annotations = map[string]string{v1alpha1.AllowedImportersAnnotation: "cluster1/other"}
			if _, err := f.remote.CoreV1().ServiceAccounts("team").Update(context.Background(), sa, metav1.UpdateOptions{}); err != nil {
				f.t.Fatal(err)
			}
		},
		wantReason: v1alpha1.ReasonNamespaceNotAllowed, wantInMsg: "--into-namespaces app",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, newImport(testImport, "cluster2", "team", "sa"))
			a := f.withAnchors()
			if _, err := f.reconcile(); err != nil {
				t.Fatal(err)
			}
			tt.refuse(f, a)
			f.clock.Step(time.Minute)
			f.requestRefresh("revoked")
			if _, err := f.reconcile(); err == nil {
				t.Fatal("refused refresh: no retry")
			}
			c := f.ready()
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != tt.wantReason || !strings.Contains(c.Message, tt.wantInMsg) ||
				!strings.Contains(c.Message, "removed the token from secret app/x-token") || strings.Contains(c.Message, "stays valid") {
				t.Fatalf("Ready = %+v, want %s with %q", c, tt.wantReason, tt.wantInMsg)
			}
			s := f.secret()
			if s == nil {
				t.Fatal("the secret was deleted: the webhook's checks and the mounts need it")
			}
			if _, ok := s.Data[v1alpha1.SecretKeyToken]; ok || len(s.Data[v1alpha1.SecretKeyServer]) == 0 || len(s.Data[v1alpha1.SecretKeyConfig]) == 0 {
				t.Fatalf("secret data keys after refusal: %v", keys(s.Data))
			}
			if st := f.get().Status; st.ExpirationTimestamp != nil || len(st.Secrets) != 1 {
				t.Errorf("status after refusal = %+v, want no expiry and the secret", st)
			}

			// Allowed again (allow, or the end of a revoke): the retry gets a new token.
			a.missing, f.remoteErr = false, nil
			sa, _ := f.remote.CoreV1().ServiceAccounts("team").Get(context.Background(), "sa", metav1.GetOptions{})
			sa.Annotations = nil
			if _, err := f.remote.CoreV1().ServiceAccounts("team").Update(context.Background(), sa, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			f.clock.Step(time.Minute)
			if _, err := f.reconcile(); err != nil {
				t.Fatal(err)
			}
			if c := f.ready(); c.Status != metav1.ConditionTrue || len(f.secret().Data[v1alpha1.SecretKeyToken]) == 0 {
				t.Fatalf("after the grant is back: Ready = %+v, secret keys %v", c, keys(f.secret().Data))
			}
		})
	}
}

// TestCredentialAnchorMissing: the cluster credential's renewal is bound too, and a missing
// anchor names bootstrap; its token stays (it is the importer's, not mounted in pods).
func TestCredentialAnchorMissing(t *testing.T) {
	f := newFixture(t)
	a := f.withAnchors()
	credKey := client.ObjectKey{Namespace: v1alpha1.DefaultNamespace, Name: "cluster2"}
	if _, err := f.r.Reconcile(context.Background(), reconcile.Request{NamespacedName: credKey}); err != nil {
		t.Fatal(err)
	}
	if len(a.bound) != 1 || a.bound[0].Name != grant.AnchorName("cluster1", "cluster1") {
		t.Fatalf("credential bound to %+v", a.bound)
	}
	a.missing = true
	imp := &v1alpha1.ServiceAccountImport{}
	if err := f.local.Get(context.Background(), credKey, imp); err != nil {
		t.Fatal(err)
	}
	imp.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "now"}
	if err := f.local.Update(context.Background(), imp); err != nil {
		t.Fatal(err)
	}
	f.clock.Step(time.Minute)
	if _, err := f.r.Reconcile(context.Background(), reconcile.Request{NamespacedName: credKey}); err == nil {
		t.Fatal("no retry")
	}
	if err := f.local.Get(context.Background(), credKey, imp); err != nil {
		t.Fatal(err)
	}
	c := imp.Status.Conditions[0]
	if c.Reason != v1alpha1.ReasonGrantAnchorMissing || !strings.Contains(c.Message, "run `kubectl mcsa bootstrap cluster1 cluster2`") {
		t.Fatalf("Ready = %+v", c)
	}
	s := &corev1.Secret{}
	if err := f.local.Get(context.Background(), client.ObjectKey{Namespace: v1alpha1.DefaultNamespace, Name: v1alpha1.SecretName("cluster2")}, s); err != nil || len(s.Data[v1alpha1.SecretKeyToken]) == 0 {
		t.Fatalf("credential's secret: %v, keys %v", err, keys(s.Data))
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
