package diagnose

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube/kubefake"
)

// installed is what `kubectl mcsa install` leaves in a healthy cluster, with the webhook's
// CA injected and matching its serving certificate.
func installed(t *testing.T, c *kubefake.Cluster) {
	t.Helper()
	b, err := manifests.FS.ReadFile(crdFile)
	if err != nil {
		t.Fatal(err)
	}
	crd := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &crd.Object); err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := certutil.GenerateSelfSignedCertKey("mcsa-webhook.multicluster-service-account.svc", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Add(crd,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: manifests.Namespace}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: manifests.ControllerDeployment, Namespace: manifests.Namespace},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1)}, Status: appsv1.DeploymentStatus{AvailableReplicas: 1}},
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: manifests.WebhookConfiguration},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "automount.multicluster.admiralty.io", ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: caOf(t, certPEM)}}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: manifests.ServingCertSecret, Namespace: manifests.Namespace}, Data: map[string][]byte{corev1.TLSCertKey: certPEM}},
	)
}

// caOf is the CA that GenerateSelfSignedCertKey appends to the serving certificate.
func caOf(t *testing.T, chain []byte) []byte {
	t.Helper()
	certs, err := certutil.ParseCertsPEM(chain)
	if err != nil || len(certs) != 2 {
		t.Fatalf("chain: %d certificates, %v", len(certs), err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[1].Raw})
}

func jwt(exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(fmt.Sprintf(`{"exp":%d}`, exp.Unix()))) + "." + enc([]byte("sig"))
}

// clusterCredential is cluster1's cluster credential for cluster2, with a token and its secret.
func clusterCredential(token string) []runtime.Object {
	sai := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "cluster2", Namespace: manifests.Namespace, Generation: 1},
		Spec:   v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: grant.Namespace, Name: "cluster1"},
		Status: v1alpha1.ServiceAccountImportStatus{Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonTokenIssued, ObservedGeneration: 1}}}}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SecretName("cluster2"), Namespace: manifests.Namespace},
		Data: map[string][]byte{v1alpha1.SecretKeyToken: []byte(token), v1alpha1.SecretKeyServer: []byte("https://cluster2.example:6443")}}
	return []runtime.Object{sai, secret}
}

// federatedCredential is cluster1's federated cluster credential for cluster2, with the Ready
// condition given (none if reason is ""), and its ConfigMap unless noConfigMap.
func federatedCredential(status metav1.ConditionStatus, reason, message string, noConfigMap bool) []runtime.Object {
	sai := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "cluster2", Namespace: manifests.Namespace, Generation: 1},
		Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: grant.Namespace, Name: "cluster1", Mode: v1alpha1.ModeFederated}}
	if reason != "" {
		sai.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: message, ObservedGeneration: 1}}
	}
	if noConfigMap {
		return []runtime.Object{sai}
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.FederatedConfigMapName("cluster2"), Namespace: manifests.Namespace},
		Data: map[string]string{v1alpha1.SecretKeyServer: "https://cluster2.example:6443", v1alpha1.KeyAs: "system:serviceaccount:multicluster-service-account:cluster1"}}
	return []runtime.Object{sai, cm}
}

// federatedImported is a federated import of cluster2's default/reader in namespace default.
func federatedImported(ready bool) []runtime.Object {
	sai := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: "default", Generation: 1},
		Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: "reader", Mode: v1alpha1.ModeFederated}}
	c := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonFederated, Message: "pods act as default/reader", ObservedGeneration: 1}
	if !ready {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonImpersonationNotAllowed, "Run `kubectl mcsa allow cluster1 default/reader --federated --into-namespaces default --context cluster2`."
	}
	sai.Status.Conditions = []metav1.Condition{c}
	return []runtime.Object{sai, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}}
}

// imported are imports of cluster2 in namespace default: a granted and a denied one.
func imported(ready bool) []runtime.Object {
	var objs []runtime.Object
	for _, name := range []string{"granted", "denied"} {
		sai := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Generation: 1},
			Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: name}}
		if ready {
			sai.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonTokenIssued, ObservedGeneration: 1}}
		} else if name == "denied" {
			sai.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonForbidden, Message: "cluster2 has not granted cluster1 default/denied", ObservedGeneration: 1}}
		}
		objs = append(objs, sai)
	}
	return append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
}

// remote is cluster2 as the importer's credential sees it: it may renew its own token
// (unless selfRenew is false) and import default/granted.
func remote(selfRenew bool, fail error) *k8sfake.Clientset {
	cs := k8sfake.NewClientset()
	cs.PrependReactor("create", "selfsubjectrulesreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		if fail != nil {
			return true, nil, fail
		}
		r := &authorizationv1.SelfSubjectRulesReview{}
		if selfRenew {
			r.Status.ResourceRules = []authorizationv1.ResourceRule{{Verbs: []string{"create"}, APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, ResourceNames: []string{"cluster1"}}}
		}
		return true, r, nil
	})
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
		attrs := r.Spec.ResourceAttributes
		r.Status.Allowed = attrs.Namespace == "default" && attrs.Name == "granted" && attrs.Verb == "create" && attrs.Subresource == "token"
		return true, r, nil
	})
	return cs
}

func TestDoctor(t *testing.T) {
	// The certificates are valid from the real time on; tokens have a one-second resolution.
	now := time.Now().Truncate(time.Second)
	healthy := []string{
		"✓ crd: the ServiceAccountImport API is installed and current",
		"✓ controller: deployment mcsa-controller available (1/1)",
		"✓ webhook: CA injected and matching the serving certificate, which expires in ",
	}
	rebootstrap := "re-run `kubectl mcsa bootstrap THIS_CONTEXT cluster2`"
	refederate := "re-run `kubectl mcsa federate cluster1 cluster2`"
	discovery := "issuer discovery: "
	discoveryURL := "https://cluster1.example:6443/.well-known/openid-configuration"
	tests := []struct {
		name   string
		setup  func(t *testing.T, c *kubefake.Cluster)
		remote kubernetes.Interface
		// anonymous is the HTTP status of this cluster's issuer discovery to anonymous callers
		// (0: doctor must not ask).
		anonymous int
		want      []string // "✓ name: message → remedy", a prefix of each check
	}{
		{name: "not installed", setup: func(*testing.T, *kubefake.Cluster) {},
			want: []string{"✗ crd: the ServiceAccountImport API is not installed → kubectl mcsa install --context cluster1"}},
		{name: "a source only", setup: func(_ *testing.T, c *kubefake.Cluster) {
			c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: grant.Namespace}}, grant.ImporterServiceAccount("cluster3"), grant.ImporterServiceAccount("cluster0"),
				grant.ClusterCredentialAnchor("cluster3"), grant.ClusterCredentialAnchor("cluster0"))
		}, want: []string{"✓ grant anchors: every one of the 2 grant(s) to importing clusters has its anchor",
			"✓ role: source only: cluster0, cluster3 may import from this cluster (no importer installed here)"}},
		{name: "grants without anchors", setup: func(_ *testing.T, c *kubefake.Cluster) {
			role, _ := grant.ImportRole("cluster3", "default", []string{"pod-lister", "reader"})
			c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: grant.Namespace}}, grant.ImporterServiceAccount("cluster3"),
				grant.ClusterCredentialAnchor("cluster3"), role, grant.Anchor("cluster3", "default", "reader"), grant.Anchor("cluster4", "default", "pod-lister"))
		}, want: []string{"✗ grant anchors: grants without an anchor (their tokens cannot be revoked at once, and the importer gets none): cluster3 of default/pod-lister → re-run `kubectl mcsa allow cluster3 default/pod-lister --context cluster1`",
			"✓ role: source only: cluster3 may import"}},
		{name: "healthy, no remote yet", setup: installed,
			want: append(healthy, "✓ clusters: no remote cluster yet", "✓ imports: 0 import(s), all ready")},
		{name: "an old CRD", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			crd := c.Object(kubefake.CRDKind, "", manifests.CRD)
			_ = unstructured.SetNestedSlice(crd.Object, []any{map[string]any{"name": "v1alpha0", "served": true, "storage": true}}, "spec", "versions")
			if _, err := c.Dynamic.Resource(crdResource).Update(context.Background(), crd, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"✗ crd: the ServiceAccountImport API differs from this plugin's version → kubectl mcsa install --context cluster1", healthy[1], healthy[2], "✓ clusters", "✓ imports"}},
		{name: "controller down, webhook without CA", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			ctx := context.Background()
			dep, _ := c.Kube.AppsV1().Deployments(manifests.Namespace).Get(ctx, manifests.ControllerDeployment, metav1.GetOptions{})
			dep.Status.AvailableReplicas = 0
			w, _ := c.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, manifests.WebhookConfiguration, metav1.GetOptions{})
			w.Webhooks[0].ClientConfig.CABundle = nil
			if _, err := c.Kube.AppsV1().Deployments(manifests.Namespace).Update(ctx, dep, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, w, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, want: []string{
			healthy[0],
			"✗ controller: deployment mcsa-controller has no available replica (0/1) → kubectl --context cluster1 -n multicluster-service-account describe deployment mcsa-controller; kubectl --context cluster1 -n multicluster-service-account logs deploy/mcsa-controller",
			"✗ webhook: webhook automount.multicluster.admiralty.io has no CA bundle: the API server cannot call it and annotated pods are rejected → the controller injects it: check `kubectl --context cluster1 -n multicluster-service-account logs deploy/mcsa-controller`",
			"✓ clusters: no remote cluster yet", "✓ imports: 0 import(s), all ready"}},
		{name: "serving certificate from another CA", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			other, _, err := certutil.GenerateSelfSignedCertKey("other", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			c.Add(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: manifests.ServingCertSecret, Namespace: manifests.Namespace}, Data: map[string][]byte{corev1.TLSCertKey: other}})
		}, want: []string{healthy[0], healthy[1], "✗ webhook: the serving certificate does not verify against the webhook's CA bundle: x509: certificate signed by unknown authority → the controller injects it", "✓ clusters", "✓ imports"}},
		{name: "serving certificate unreadable", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			c.Add(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: manifests.ServingCertSecret, Namespace: manifests.Namespace}, Data: map[string][]byte{corev1.TLSCertKey: []byte("nope")}})
		}, want: []string{healthy[0], healthy[1], "✗ webhook: serving certificate: secret mcsa-webhook-serving-cert (key tls.crt): data does not contain any valid RSA or ECDSA certificates → the controller injects it", "✓ clusters", "✓ imports"}},
		{name: "remote healthy, one import not granted", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			c.Add(clusterCredential(jwt(now.Add(10 * time.Hour)))...)
			c.Add(imported(false)...)
		}, remote: remote(true, nil), want: append(healthy[:3:3],
			"✓ cluster cluster2: reachable at https://cluster2.example:6443; credential expires in 10h; the importer may renew it and import 1 of 2 import(s)",
			"✗ cluster cluster2 grants: not granted in cluster2: default/denied → in cluster2: kubectl mcsa allow THIS_CLUSTER NAMESPACE/SERVICEACCOUNT (see `kubectl mcsa get -A -o wide --context cluster1`)",
			"✗ imports Forbidden: 1 import(s) not ready: default/denied → cluster2 has not granted cluster1 default/denied",
			"✗ imports Pending: 1 import(s) not ready: default/granted → the importer has not reported on it")},
		{name: "credential expired", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			c.Add(clusterCredential(jwt(now.Add(-time.Hour)))...)
		}, want: append(healthy[:3:3], "✗ cluster cluster2: credential expired 60m ago: the importer could not renew it → "+rebootstrap, "✓ imports: 1 import(s), all ready")},
		{name: "credential unreadable", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			c.Add(clusterCredential("abc")...)
		}, want: append(healthy[:3:3], "✗ cluster cluster2: credential token unreadable: not a JSON web token (want three dot-separated parts) → "+rebootstrap, "✓ imports")},
		{name: "credential without its secret", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			c.Add(clusterCredential("abc")[0])
		}, want: append(healthy[:3:3], "✗ cluster cluster2: import multicluster-service-account/cluster2 has no secret (the importer has not written it yet) → "+rebootstrap, "✓ imports")},
		{name: "credential refused", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			c.Add(clusterCredential(jwt(now.Add(time.Hour)))...)
		}, remote: remote(true, apierrors.NewUnauthorized("no")),
			want: append(healthy[:3:3], "✗ cluster cluster2: the remote API server refuses the credential (expired, revoked, or the cluster was rebuilt) → "+rebootstrap, "✓ imports")},
		{name: "remote unreachable", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			c.Add(clusterCredential(jwt(now.Add(time.Hour)))...)
		}, remote: remote(true, fmt.Errorf("dial tcp: i/o timeout")),
			want: append(healthy[:3:3], "✗ cluster cluster2: unreachable at https://cluster2.example:6443: dial tcp: i/o timeout → check the URL (bootstrap --source-server) and the network from this cluster", "✓ imports")},
		{name: "self-renew grant removed", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			c.Add(clusterCredential(jwt(now.Add(time.Hour)))...)
			c.Add(imported(true)...)
		}, remote: remote(false, nil),
			want: append(healthy[:3:3], "✗ cluster cluster2: the importer may not renew its own token there: its grant was removed → "+rebootstrap, "✓ imports: 3 import(s), all ready")},

		// Federated credentials and imports: no secret, no token; the importer's report.
		{name: "federated credential, healthy", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			c.Add(federatedCredential(metav1.ConditionTrue, v1alpha1.ReasonFederated, "Cluster credential for cluster2 (federated): cluster2 accepts this cluster's service-account tokens.", false)...)
			c.Add(federatedImported(true)...)
		}, anonymous: http.StatusOK, want: append(healthy[:3:3],
			"✓ cluster cluster2: federated at https://cluster2.example:6443: Cluster credential for cluster2 (federated): cluster2 accepts",
			"✓ "+discovery+"served to anonymous callers at "+discoveryURL+": cluster2 can fetch this cluster's keys",
			"✓ imports: 2 import(s), all ready")},
		{name: "federated credential, discovery not served", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			c.Add(federatedCredential(metav1.ConditionFalse, v1alpha1.ReasonDiscoveryNotServed, "This cluster does not serve its service-account issuer discovery to anonymous callers. Run `kubectl mcsa federate cluster1 cluster2`.", false)...)
		}, anonymous: http.StatusForbidden, want: append(healthy[:3:3],
			"✗ cluster cluster2: federated at https://cluster2.example:6443: DiscoveryNotServed: This cluster does not serve its service-account issuer discovery to anonymous callers. Run `kubectl mcsa federate cluster1 cluster2`. → "+refederate,
			"✗ "+discovery+"not served to anonymous callers at "+discoveryURL+" (HTTP 403): cluster2 cannot fetch this cluster's keys, so its pods' tokens are refused once the cached keys expire → "+refederate+" (it writes ClusterRoleBinding "+grant.DiscoveryBindingName+")",
			"✗ imports DiscoveryNotServed: 1 import(s) not ready: multicluster-service-account/cluster2 → This cluster does not serve")},
		{name: "federated credential, unreachable", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			c.Add(federatedCredential(metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable, "Cannot reach cluster cluster2: dial tcp: i/o timeout.", false)...)
		}, anonymous: http.StatusOK, want: append(healthy[:3:3],
			"✗ cluster cluster2: federated at https://cluster2.example:6443: ClusterUnreachable: Cannot reach cluster cluster2: dial tcp: i/o timeout. → check the URL (federate --source-server) and the network from this cluster",
			"✓ "+discovery, "✗ imports ClusterUnreachable")},
		{name: "federated credential, importer silent", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			c.Add(federatedCredential("", "", "", false)...)
		}, anonymous: http.StatusUnauthorized, want: append(healthy[:3:3],
			"✗ cluster cluster2: federated at https://cluster2.example:6443: the importer has not reported on the credential → kubectl --context cluster1 -n multicluster-service-account logs deploy/mcsa-controller",
			"✗ "+discovery+"not served to anonymous callers at "+discoveryURL+" (HTTP 401)", "✗ imports Pending")},
		{name: "federated credential without its ConfigMap", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			c.Add(federatedCredential(metav1.ConditionTrue, v1alpha1.ReasonFederated, "ok", true)...)
		}, anonymous: http.StatusOK, want: append(healthy[:3:3],
			"✗ cluster cluster2: federated credential without its ConfigMap multicluster-service-account/"+v1alpha1.FederatedConfigMapName("cluster2")+": the importer does not know where cluster2 is → "+refederate,
			"✓ "+discovery, "✓ imports: 1 import(s), all ready")},
		{name: "token credential and a federated import not granted", setup: func(t *testing.T, c *kubefake.Cluster) {
			installed(t, c)
			c.Add(clusterCredential(jwt(now.Add(10 * time.Hour)))...)
			c.Add(imported(true)...)
			c.Add(federatedImported(false)...)
		}, remote: remote(true, nil), anonymous: http.StatusOK, want: append(healthy[:3:3],
			// The federated import is not one the importer's token imports: not counted.
			"✓ cluster cluster2: reachable at https://cluster2.example:6443; credential expires in 10h; the importer may renew it and import 1 of 2 import(s)",
			"✗ cluster cluster2 grants: not granted in cluster2: default/denied",
			"✓ "+discovery+"served to anonymous callers",
			"✗ imports ImpersonationNotAllowed: 1 import(s) not ready: default/reader → Run `kubectl mcsa allow cluster1 default/reader --federated")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := kubefake.New("cluster1")
			tt.setup(t, c)
			d := &doctor{cl: c.Clients(), now: now, remote: func(cfg *rest.Config) (kubernetes.Interface, error) {
				if tt.remote == nil {
					t.Errorf("doctor called the remote cluster at %s", cfg.Host)
					return k8sfake.NewClientset(), nil
				}
				return tt.remote, nil
			}, anonymousGet: func(_ context.Context, cfg *rest.Config, path string) (string, int, error) {
				if tt.anonymous == 0 {
					t.Errorf("doctor fetched %s%s", cfg.Host, path)
				}
				return cfg.Host + path, tt.anonymous, nil
			}}
			var got []string
			for _, ch := range d.run(context.Background()) {
				mark := "✗"
				if ch.OK {
					mark = "✓"
				}
				s := fmt.Sprintf("%s %s: %s", mark, ch.Name, ch.Message)
				if ch.Remedy != "" && !ch.OK {
					s += " → " + ch.Remedy
				}
				if ch.Context != "cluster1" {
					t.Errorf("check %q of context %q", ch.Name, ch.Context)
				}
				got = append(got, s)
			}
			ok := len(got) == len(tt.want)
			for i := 0; ok && i < len(got); i++ {
				ok = strings.HasPrefix(got[i], tt.want[i])
			}
			if !ok {
				t.Errorf("checks:\n%s\nwant (prefixes)\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestAnonymousGet fetches the issuer discovery as a remote cluster does: with the
// kubeconfig's server and CA, without its credentials.
func TestAnonymousGet(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "":
			t.Errorf("credentials sent: %q", r.Header.Get("Authorization"))
			w.WriteHeader(http.StatusInternalServerError)
		case r.URL.Path == "/prefix"+discoveryPath:
			_, _ = w.Write([]byte(`{"issuer":"https://cluster1.example"}`))
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	for _, tt := range []struct {
		host       string
		wantStatus int
	}{{srv.URL + "/prefix", http.StatusOK}, {srv.URL, http.StatusForbidden}} {
		cfg := &rest.Config{Host: tt.host, BearerToken: "secret", TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
		url, status, err := anonymousGet(context.Background(), cfg, discoveryPath)
		if err != nil || status != tt.wantStatus || url != tt.host+discoveryPath {
			t.Errorf("%s: %s %d %v, want %d", tt.host, url, status, err, tt.wantStatus)
		}
	}
	if _, _, err := anonymousGet(context.Background(), &rest.Config{Host: srv.URL}, discoveryPath); err == nil {
		t.Error("a server of an unknown CA answered")
	}
}
