package cmd

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/federation"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
)

// TestFederateEndToEnd runs federate and unfederate against real control planes: cluster2 (B)
// starts with an empty, reloadable authentication configuration; cluster1 (A) has kubectl-mcsa
// installed. After federate, B maps A's service accounts to A's federated users; A holds the
// federated credential; a second run changes nothing; after A publishes a new key, federate
// rewrites B's entry and returns once B accepts tokens signed with it; unfederate makes B refuse
// A's tokens again.
func TestFederateEndToEnd(t *testing.T) {
	f := fixture.ForTest(t, fixture.Options{
		Clusters: []string{"cluster1", "cluster2"},
		Install:  []string{"cluster1"},
		ClusterOptions: func(name string) controlplane.Options {
			return controlplane.Options{AuthenticationConfig: name == "cluster2"}
		},
	})
	t.Setenv("KUBECACHEDIR", t.TempDir())
	ctx := context.Background()
	a, b := f.Cluster("cluster1"), f.Cluster("cluster2")
	file := b.AuthenticationConfigFile
	mcsa := func(t *testing.T, args ...string) (string, string) {
		t.Helper()
		out, errOut, err := run(t, f.Kubeconfig, args...)
		if err != nil {
			t.Fatalf("kubectl mcsa %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
		}
		return out, errOut
	}
	// The harness's clusters listen on loopback, and each reaches the other there.
	federate := []string{"federate", "cluster1", "cluster2", "--authentication-config", file, "--issuer-server", a.Server, "--source-server", b.Server}
	// whoami asks B who a token of A's team/app for B's audience is.
	token := mintIn(ctx, t, a.Clientset(), "team", "app", v1alpha1.FederatedAudience("cluster2"))
	whoami := func(ctx context.Context) (string, error) {
		cs := kubernetes.NewForConfigOrDie(&rest.Config{Host: b.Server, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: b.CAData}})
		r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			return "", err
		}
		return r.Status.UserInfo.Username, nil
	}
	if _, err := whoami(ctx); !apierrors.IsUnauthorized(err) {
		t.Fatalf("before federate, B answers A's token with %v, want 401", err)
	}
	configMap := v1alpha1.FederatedConfigMapName("cluster2")

	t.Run("loopback URLs refused", func(t *testing.T) {
		_, _, err := run(t, f.Kubeconfig, "federate", "cluster1", "cluster2", "--authentication-config", file, "--source-server", b.Server)
		if err == nil || !strings.Contains(err.Error(), "--issuer-server "+a.Server) {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("dry run writes nothing", func(t *testing.T) {
		before, _ := os.ReadFile(file)
		out, _ := mcsa(t, append(federate, "--dry-run=client", "-o", "yaml")...)
		var list struct {
			Kind  string           `json:"kind"`
			Items []map[string]any `json:"items"`
		}
		if err := yaml.Unmarshal([]byte(out), &list); err != nil || list.Kind != "List" {
			t.Fatalf("-o yaml: %v\n%s", err, out)
		}
		kinds := map[string]bool{}
		for _, i := range list.Items {
			kinds[i["kind"].(string)] = true
		}
		for _, k := range []string{"ClusterRoleBinding", "ServiceAccountImport", "ConfigMap", "AuthenticationConfiguration"} {
			if !kinds[k] {
				t.Errorf("-o yaml lacks a %s:\n%s", k, out)
			}
		}
		if after, _ := os.ReadFile(file); string(after) != string(before) {
			t.Error("the dry run changed B's file")
		}
		if _, err := a.Clientset().RbacV1().ClusterRoleBindings().Get(ctx, grant.DiscoveryBindingName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the dry run wrote the binding: %v", err)
		}
		out, _ = mcsa(t, append(federate, "--dry-run=server")...)
		if !strings.Contains(out, "serviceaccountimport.multicluster.admiralty.io/cluster2 created (server dry run)") {
			t.Errorf("server dry run:\n%s", out)
		}
		if _, err := a.Clientset().CoreV1().ConfigMaps(manifests.Namespace).Get(ctx, configMap, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the server dry run wrote the ConfigMap: %v", err)
		}
	})

	t.Run("federate: B accepts A's tokens as A's users", func(t *testing.T) {
		began := time.Now()
		out, errOut := mcsa(t, federate...)
		t.Logf("federate took %s; its progress:\n%s", time.Since(began).Round(100*time.Millisecond), errOut)
		for _, want := range []string{
			"clusterrolebinding.rbac.authorization.k8s.io/" + grant.DiscoveryBindingName + " created",
			"serviceaccountimport.multicluster.admiralty.io/cluster2 created",
			"configmap/" + configMap + " created",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q:\n%s", want, out)
			}
		}
		if !strings.Contains(errOut, "cluster2 accepts cluster1's tokens") {
			t.Errorf("not verified:\n%s", errOut)
		}
		user, err := whoami(ctx)
		if err != nil || user != grant.FederatedUser("cluster1", "team", "app") {
			t.Fatalf("B says A's team/app is %q (%v), want %q", user, err, grant.FederatedUser("cluster1", "team", "app"))
		}
		imp := &v1alpha1.ServiceAccountImport{}
		if err := a.Client.Get(ctx, client.ObjectKey{Namespace: manifests.Namespace, Name: "cluster2"}, imp); err != nil {
			t.Fatal(err)
		}
		if !v1alpha1.IsFederated(imp) || imp.Spec.ClusterName != "cluster2" || imp.Spec.Name != "cluster1" {
			t.Errorf("credential %+v", imp.Spec)
		}
		cm, err := a.Clientset().CoreV1().ConfigMaps(manifests.Namespace).Get(ctx, configMap, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ref := metav1.GetControllerOf(cm); ref == nil || ref.UID != imp.UID || cm.Data[v1alpha1.SecretKeyServer] != b.Server || cm.Data[v1alpha1.SecretKeyCACert] != string(b.CAData) {
			t.Errorf("ConfigMap %+v", cm)
		}
	})

	t.Run("again changes nothing", func(t *testing.T) {
		before, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := mcsa(t, federate...)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasSuffix(line, " unchanged") {
				t.Errorf("second federate changed something: %s", line)
			}
		}
		after, _ := os.Stat(file)
		if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
			t.Error("second federate rewrote B's file")
		}
	})

	t.Run("A's new key: federate again refreshes B's keys of A", func(t *testing.T) {
		// (1) A publishes a new public key beside its signing key's.
		oldKey := readRSAKey(t, a.ServiceAccountKeyFile)
		newKey, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		both := filepath.Join(dir, "sa-both.pub")
		if err := os.WriteFile(both, append(publicPEM(t, &oldKey.PublicKey), publicPEM(t, &newKey.PublicKey)...), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := a.RestartComponent(ctx, "kube-apiserver", "--service-account-key-file="+both); err != nil {
			t.Fatal(err)
		}
		kid := keyID(t, &newKey.PublicKey)
		canary := signJWT(t, newKey, kid, map[string]any{
			"iss": a.Issuer, "aud": []string{v1alpha1.FederatedAudience("cluster2")},
			"sub": "system:serviceaccount:team:app", "iat": time.Now().Unix(), "nbf": time.Now().Unix(), "exp": time.Now().Add(10 * time.Minute).Unix(),
			"kubernetes.io": map[string]any{"namespace": "team", "serviceaccount": map[string]any{"name": "app"}},
		})
		accepted := func(ctx context.Context) error {
			cs := kubernetes.NewForConfigOrDie(&rest.Config{Host: b.Server, BearerToken: canary, TLSClientConfig: rest.TLSClientConfig{CAData: b.CAData}})
			_, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			return err
		}
		// (2) federate again: B's entry names A's new key, and federate returns once B has
		// loaded it: a token signed with the new key is accepted at once.
		began := time.Now()
		out, errOut := mcsa(t, federate...)
		t.Logf("federate took %s; its progress:\n%s", time.Since(began).Round(100*time.Millisecond), errOut)
		if err := accepted(ctx); err != nil {
			t.Fatalf("right after federate, B refuses a token signed with A's new key %s: %v", kid, err)
		}
		for _, want := range []string{"cluster1's keys changed since cluster2's entry was written (it named " + keyID(t, &oldKey.PublicKey) + ")",
			"publishes the keys", kid, "cluster2 has loaded " + file, "cluster2 accepts cluster1's tokens"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q", want)
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasSuffix(line, " unchanged") {
				t.Errorf("federate changed something in A: %s", line)
			}
		}
		raw, _ := os.ReadFile(file)
		cfg, err := federation.ParseConfig(raw)
		if err != nil || len(cfg.JWT) != 1 || !slices.Contains(grant.AuthenticatorKeyIDs(cfg.JWT[0]), kid) {
			t.Errorf("B's file (%v):\n%s", err, raw)
		}
		// Again with the same keys: B's file stays as it is.
		before, _ := os.Stat(file)
		_, errOut = mcsa(t, federate...)
		after, _ := os.Stat(file)
		if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) || !strings.Contains(errOut, "unchanged") {
			t.Errorf("federate with the same keys rewrote B's file:\n%s", errOut)
		}
	})

	t.Run("unfederate: B refuses A's tokens again", func(t *testing.T) {
		began := time.Now()
		out, errOut := mcsa(t, "unfederate", "cluster1", "cluster2", "--authentication-config", file, "--yes", "--wait")
		t.Logf("unfederate --wait took %s; its progress:\n%s", time.Since(began).Round(100*time.Millisecond), errOut)
		for _, want := range []string{"serviceaccountimport.multicluster.admiralty.io/cluster2 deleted", "configmap/" + configMap + " deleted"} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q:\n%s", want, out)
			}
		}
		raw, _ := os.ReadFile(file)
		cfg, err := federation.ParseConfig(raw)
		if err != nil || len(cfg.JWT) != 0 {
			t.Errorf("B's file after unfederate (%v):\n%s", err, raw)
		}
		// B refuses within about a minute after its file changed.
		if err := wait.PollUntilContextTimeout(ctx, time.Second, 90*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := whoami(ctx)
			return apierrors.IsUnauthorized(err), nil
		}); err != nil {
			t.Fatalf("B still accepts A's tokens %s after unfederate", time.Since(began).Round(time.Second))
		}
		t.Logf("B refused A's tokens %s after unfederate began", time.Since(began).Round(100*time.Millisecond))
		if _, err := a.Clientset().RbacV1().ClusterRoleBindings().Get(ctx, grant.DiscoveryBindingName, metav1.GetOptions{}); err != nil {
			t.Errorf("unfederate without --discovery removed A's binding: %v", err)
		}
		out, _ = mcsa(t, "unfederate", "cluster1", "cluster2", "--authentication-config", file, "--yes")
		if strings.TrimSpace(out) != "" {
			t.Errorf("second unfederate removed something:\n%s", out)
		}
	})

	t.Run("without the file: the entry for the operator", func(t *testing.T) {
		before, _ := os.ReadFile(file)
		args := []string{"federate", "cluster1", "cluster2", "--issuer-server", a.Server, "--source-server", b.Server}
		if _, _, err := run(t, f.Kubeconfig, append(args, "-o", "yaml")...); err == nil || !strings.Contains(err.Error(), "--wait=false") {
			t.Errorf("-o while waiting for an entry it would print at the end: %v", err)
		}
		out, errOut := mcsa(t, append(args, "--wait=false")...)
		if !strings.Contains(out, "---\napiVersion: apiserver.config.k8s.io/v1\n") || !strings.Contains(out, "url: "+a.Issuer) || !strings.Contains(out, "audiences:\n    - "+v1alpha1.FederatedAudience("cluster2")) {
			t.Errorf("stdout:\n%s", out)
		}
		out, _ = mcsa(t, append(args, "--wait=false", "-o", "json")...)
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Items) == 0 {
			t.Fatalf("-o json (%v):\n%s", err, out)
		}
		cfg, err := federation.ParseConfig(list.Items[len(list.Items)-1])
		if err != nil || len(cfg.JWT) != 1 || cfg.JWT[0].Issuer.URL != a.Issuer || federation.ClusterOf(cfg.JWT[0]) != "cluster1" {
			t.Errorf("-o json's authentication configuration (%v):\n%s", err, out)
		}
		for _, want := range []string{"--authentication-config", "EKS", "AKS", "not verified (--wait=false)"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q:\n%s", want, errOut)
			}
		}
		out, errOut = mcsa(t, "unfederate", "cluster1", "cluster2", "--yes")
		if !strings.Contains(out, "serviceaccountimport.multicluster.admiralty.io/cluster2 deleted") || !strings.Contains(out, "url: "+a.Issuer) ||
			!strings.Contains(errOut, "whose issuer.url is "+a.Issuer) {
			t.Errorf("unfederate without the file:\n%s\n%s", out, errOut)
		}
		if after, _ := os.ReadFile(file); string(after) != string(before) {
			t.Error("B's file changed")
		}
	})
}

// mintIn mints a token of service account ns/name (created if need be) for audience.
func mintIn(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name, audience string) string {
	t.Helper()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: []string{audience}, ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

func readRSAKey(t *testing.T, path string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	}
	key, ok := k.(*rsa.PrivateKey)
	if err != nil || !ok {
		t.Fatalf("%s: not an RSA key (%v)", path, err)
	}
	return key
}

func publicPEM(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// keyID is the key ID kube-apiserver gives a public key: the unpadded URL-safe base64 of the
// SHA-256 of its PKIX form.
func keyID(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// signJWT is a compact RS256 JWS of claims with key ID kid.
func signJWT(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(map[string]string{"alg": "RS256", "kid": kid, "typ": "JWT"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}
