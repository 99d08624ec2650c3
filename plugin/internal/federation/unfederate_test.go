package federation

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

func (e *bed) unfederate() *Unfederate {
	return &Unfederate{
		A: e.ac, B: e.bc, AName: "cluster1", BName: "cluster2",
		AuthenticationConfig: e.file, UI: ui.New(&e.out),
		timings: timings{interval: 20 * time.Millisecond, probeTimeout: 2 * time.Second, discoveryGrace: time.Second},
	}
}

func imp(ns, name, cluster string, mode v1alpha1.ImportMode) *v1alpha1.ServiceAccountImport {
	return &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: cluster, Namespace: "apps", Name: "reader", Mode: mode}}
}

// federated is a bed where cluster2 trusts cluster1 (beside another issuer), cluster1 has its
// federated credential, a federated import from cluster2, and imports that unfederate leaves.
func federated(t *testing.T) (*bed, apiserverv1.JWTAuthenticator) {
	t.Helper()
	e := newBed(t)
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"issuer":"https://other.example","jwks_uri":"https://other.example/keys"}`))
	}))
	t.Cleanup(other.Close)
	otherAuth := apiserverv1.JWTAuthenticator{
		Issuer:        apiserverv1.Issuer{URL: "https://other.example", DiscoveryURL: ptr.To(other.URL + DiscoveryPath), CertificateAuthority: string(pemOf(other)), Audiences: []string{"other"}},
		ClaimMappings: apiserverv1.ClaimMappings{Username: apiserverv1.PrefixedClaimOrExpression{Claim: "sub", Prefix: ptr.To("other:")}},
	}
	b, _ := MarshalConfig(NewConfig(otherAuth))
	writeFile(t, e.file, string(b))
	if _, _, err := run(context.Background(), e.federate()); err != nil {
		t.Fatalf("%v\n%s", err, e.out.String())
	}
	e.a.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}},
		imp("team", "federated", "cluster2", v1alpha1.ModeFederated),
		imp("team", "token", "cluster2", v1alpha1.ModeToken),
		imp("team", "elsewhere", "cluster3", v1alpha1.ModeFederated))
	e.out.Reset()
	return e, otherAuth
}

func TestUnfederate(t *testing.T) {
	ctx := context.Background()
	e, otherAuth := federated(t)
	credential := "ServiceAccountImport.multicluster.admiralty.io/" + manifests.Namespace + "/cluster2"
	configMap := "ConfigMap/" + manifests.Namespace + "/" + v1alpha1.FederatedConfigMapName("cluster2")
	binding := "ClusterRoleBinding.rbac.authorization.k8s.io/" + grant.DiscoveryBindingName
	federatedImport := "ServiceAccountImport.multicluster.admiralty.io/team/federated"
	for _, n := range []string{credential, configMap, binding, federatedImport} {
		if !slices.Contains(e.a.Names(), n) {
			t.Fatalf("no %s in %v", n, e.a.Names())
		}
	}

	// Dry runs: the plan, and nothing removed.
	for _, dryRun := range []DryRun{ClientDryRun, ServerDryRun} {
		raw, _ := os.ReadFile(e.file)
		names := e.a.Names()
		u := e.unfederate()
		u.DryRun = dryRun
		p, err := u.Plan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Removed) != 1 || len(p.Imports) != 1 || p.Imports[0].Name != "federated" || p.Credential == nil || p.KeptCredential {
			t.Fatalf("%s: plan %+v", dryRun, p)
		}
		results, err := u.Run(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if got := actions(results); !slices.Equal(got, []string{
			"serviceaccountimport/federated deleted", "configmap/" + v1alpha1.FederatedConfigMapName("cluster2") + " deleted", "serviceaccountimport/cluster2 deleted"}) {
			t.Errorf("%s: results %v", dryRun, got)
		}
		if after, _ := os.ReadFile(e.file); !bytes.Equal(raw, after) {
			t.Errorf("%s: the file changed", dryRun)
		}
		if !slices.Equal(names, e.a.Names()) {
			t.Errorf("%s: A changed: %v, then %v", dryRun, names, e.a.Names())
		}
	}

	// For real: B's file keeps the other issuer only, A keeps its binding and other imports.
	u := e.unfederate()
	u.Wait = 5 * time.Second
	p, err := u.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Run(ctx, p); err != nil {
		t.Fatal(err)
	}
	if cfg := readConfig(t, e.file); !equalJSON(cfg.JWT, []apiserverv1.JWTAuthenticator{otherAuth}) {
		t.Errorf("file: %+v", cfg.JWT)
	}
	names := e.a.Names()
	for _, n := range []string{credential, configMap, federatedImport} {
		if slices.Contains(names, n) {
			t.Errorf("%s not deleted", n)
		}
	}
	for _, n := range []string{binding, "ServiceAccountImport.multicluster.admiralty.io/team/token", "ServiceAccountImport.multicluster.admiralty.io/team/elsewhere"} {
		if !slices.Contains(names, n) {
			t.Errorf("%s deleted", n)
		}
	}
	if _, err := u.Verify(ctx); err != nil {
		t.Errorf("verify: %v", err)
	}

	// Again: nothing to remove, the file untouched.
	before, _ := os.Stat(e.file)
	p, err = u.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	results, err := u.Run(ctx, p)
	if err != nil || len(results) != 0 || p.FileAction != "unchanged" {
		t.Errorf("second run: %v %v %v", actions(results), p.FileAction, err)
	}
	if after, _ := os.Stat(e.file); !os.SameFile(before, after) {
		t.Error("second run rewrote the file")
	}

	// --discovery: A's binding goes too.
	u.Discovery = true
	p, _ = u.Plan(ctx)
	if results, err := u.Run(ctx, p); err != nil || len(results) != 1 || slices.Contains(e.a.Names(), binding) {
		t.Errorf("--discovery: %v %v", actions(results), err)
	}
}

// TestUnfederateKeepsTokenCredential: bootstrap's credential is not federate's to remove.
func TestUnfederateKeepsTokenCredential(t *testing.T) {
	ctx := context.Background()
	e := newBed(t)
	e.a.Add(imp(manifests.Namespace, "cluster2", "cluster2", v1alpha1.ModeToken))
	u := e.unfederate()
	p, err := u.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !p.KeptCredential || p.Credential != nil {
		t.Fatalf("plan %+v", p)
	}
	if results, err := u.Run(ctx, p); err != nil || len(results) != 0 {
		t.Fatalf("%v %v", actions(results), err)
	}
	if !strings.Contains(e.out.String(), "bootstrap's, with a token: it stays") {
		t.Errorf("output:\n%s", e.out.String())
	}
}

// TestUnfederateWithoutIssuer: when A cannot say its issuer, the authenticators federate marked
// for A go.
func TestUnfederateWithoutIssuer(t *testing.T) {
	ctx := context.Background()
	e, _ := federated(t)
	e.ac.Config.BearerToken = "" // A refuses the discovery now (anonymous, after the binding is gone)
	if err := e.ac.Kube.RbacV1().ClusterRoleBindings().Delete(ctx, grant.DiscoveryBindingName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	u := e.unfederate()
	p, err := u.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.Issuer != "" || len(p.Removed) != 1 || ClusterOf(p.Removed[0]) != "cluster1" {
		t.Errorf("plan %+v", p)
	}
	if !strings.Contains(e.out.String(), "looking for the authenticators federate wrote for cluster1") {
		t.Errorf("output:\n%s", e.out.String())
	}
}

// TestUnfederateUnreachableA: a decommissioned A no longer answers; B stops trusting it all the
// same, and the error says what is left in A.
func TestUnfederateUnreachableA(t *testing.T) {
	ctx := context.Background()
	e, otherAuth := federated(t)
	e.aSrv.Close()
	e.a.Dynamic.PrependReactor("list", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, &url.Error{Op: "Get", URL: e.aSrv.URL, Err: errors.New("connect: connection refused")}
	})
	u := e.unfederate()
	p, err := u.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = u.Run(ctx, p)
	if err == nil || !strings.Contains(err.Error(), "cluster1's federated credential and imports from cluster2 are left") {
		t.Errorf("got %v", err)
	}
	if cfg := readConfig(t, e.file); !equalJSON(cfg.JWT, []apiserverv1.JWTAuthenticator{otherAuth}) {
		t.Errorf("file: %+v", cfg.JWT)
	}
}
