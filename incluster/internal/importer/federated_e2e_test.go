package importer_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/internal/importer"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
)

// TestFederated runs the importer in-process, with the shipped identity and RBAC in A, for a
// cluster B that trusts A's issuer and that A never bootstrapped: no token of B anywhere in A.
// Each link of the chain is reported as it breaks and mends.
func TestFederated(t *testing.T) {
	e := newEnvWith(t, fixture.Options{
		Clusters: []string{clusterA, clusterB},
		Install:  []string{clusterA},
		ClusterOptions: func(name string) controlplane.Options {
			return controlplane.Options{AuthenticationConfig: name == clusterB}
		},
	})
	ctx := t.Context()
	e.startImporter(t, importer.Options{ServiceAccount: manifests.ControllerServiceAccount, FederationRecheck: 3 * time.Second})

	// An import from B before A is federated with B: the cluster is unknown.
	e.nsA(t, "team")
	early := e.createFederatedImport(t, "team", "early", "apps", "reader")
	e.waitReason(t, early, v1alpha1.ReasonClusterUnknown)

	began := time.Now()
	must(t, e.f.Federate(ctx, clusterA, clusterB))
	credential := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: clusterB}}
	got := e.waitReason(t, credential, v1alpha1.ReasonFederated)
	t.Logf("federated credential Ready %s after federation: %s", time.Since(began).Round(100*time.Millisecond), ready(got).Message)
	e.waitEvent(t, credential, v1alpha1.ReasonFederated)

	// Granted nothing in B yet: the import says which link fails and how to mend it.
	got = e.waitReason(t, early, v1alpha1.ReasonImpersonationNotAllowed)
	if msg := ready(got).Message; !strings.Contains(msg, "--federated") {
		t.Errorf("message names no remedy: %s", msg)
	}
	e.serviceAccountB(t, "apps", "reader", nil)
	must(t, e.f.AllowFederated(ctx, clusterA, clusterB, grant.FederatedGrant{Namespace: "apps", ServiceAccount: "reader",
		IntoNamespaces: []string{"team"}, Verbs: []string{"list"}, Resources: []string{"pods"}}, manifests.ControllerServiceAccount))
	got = e.waitReason(t, early, v1alpha1.ReasonFederated)
	t.Logf("ready: %s", ready(got).Message)

	// The ConfigMap tells a pod's client where B is and whom to act as; nothing in it is secret.
	cm := &corev1.ConfigMap{}
	must(t, e.ac.Get(ctx, client.ObjectKey{Namespace: "team", Name: v1alpha1.FederatedConfigMapName("early")}, cm))
	if cm.Data[v1alpha1.SecretKeyServer] != e.b.Server || cm.Data[v1alpha1.KeyAs] != v1alpha1.ServiceAccountUser("apps", "reader") ||
		cm.Data[v1alpha1.SecretKeyCACert] != string(e.b.CAData) || cm.Data[v1alpha1.SecretKeyNamespace] != "apps" {
		t.Errorf("ConfigMap data: %v", cm.Data)
	}
	kc, err := clientcmd.Load([]byte(cm.Data[v1alpha1.SecretKeyConfig]))
	must(t, err)
	user := kc.AuthInfos[kc.Contexts[kc.CurrentContext].AuthInfo]
	if user.Impersonate != v1alpha1.ServiceAccountUser("apps", "reader") || user.TokenFile != v1alpha1.MountPath("early")+"/token" || user.Token != "" {
		t.Errorf("kubeconfig user: %+v", user)
	}
	if got.Status.ExpirationTimestamp != nil || len(got.Status.Secrets) != 0 {
		t.Errorf("a federated import reports no token: %+v", got.Status)
	}

	// Another namespace of A, not granted in B.
	e.nsA(t, "other")
	other := e.createFederatedImport(t, "other", "early", "apps", "reader")
	if msg := ready(e.waitReason(t, other, v1alpha1.ReasonImpersonationNotAllowed)).Message; !strings.Contains(msg, "namespace other") {
		t.Errorf("message: %s", msg)
	}

	// No token of B anywhere in A: no import secret at all.
	var secrets corev1.SecretList
	must(t, e.ac.List(ctx, &secrets, client.HasLabels{v1alpha1.ImportNameKey}))
	if len(secrets.Items) != 0 {
		t.Errorf("A holds %d import secrets, want none", len(secrets.Items))
	}

	// A token import from a federated-only cluster cannot work: said so.
	tokenImport := e.createImport(t, "team", "token-mode", clusterB, "apps", "reader", nil)
	if msg := ready(e.waitReason(t, tokenImport, v1alpha1.ReasonClusterUnknown)).Message; !strings.Contains(msg, "federated") {
		t.Errorf("message: %s", msg)
	}

	// B stops trusting A: the credential and the imports say so.
	must(t, e.f.Unfederate(ctx, clusterA, clusterB))
	began = time.Now()
	got = e.waitReason(t, credential, v1alpha1.ReasonIssuerNotTrusted)
	t.Logf("B's distrust reported after %s: %s", time.Since(began).Round(100*time.Millisecond), ready(got).Message)

	// The mode is immutable.
	imp := e.get(t, early)
	imp.Spec.Mode = v1alpha1.ModeToken
	if err := e.ac.Update(ctx, imp); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Errorf("changing the mode: %v, want refused as immutable", err)
	}
	if c := meta.FindStatusCondition(e.get(t, early).Status.Conditions, v1alpha1.ConditionReady); c == nil {
		t.Error("no Ready condition")
	}
}

func (e *env) createFederatedImport(t *testing.T, namespace, name, remoteNS, remoteName string) *v1alpha1.ServiceAccountImport {
	imp := &v1alpha1.ServiceAccountImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: clusterB, Namespace: remoteNS, Name: remoteName, Mode: v1alpha1.ModeFederated},
	}
	must(t, e.ac.Create(t.Context(), imp))
	return imp
}
