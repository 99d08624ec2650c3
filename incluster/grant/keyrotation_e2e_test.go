package grant_test

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
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
)

// TestSigningKeyRotation rotates A's service-account signing key under a client of B that, like a
// pod whose kubelet refreshes its projected token, always presents A's newest token, and checks
// that the procedure of docs/federation.md causes no failed call: (1) A publishes the new public
// key beside the old one (kube-apiserver --service-account-key-file holds both); (2) B's entry
// for A is rendered again, as `kubectl mcsa federate A B` does, with A's key IDs now: the entry
// changes, so B rebuilds its authenticator for A, which fetches A's keys (B does not fetch them
// again by itself on an unknown key ID: kubernetes issue 139769, checked on 1.37 here: not within
// 2 minutes), and a canary token signed with the new key shows B accepts it; (3) only then A
// signs with it.
func TestSigningKeyRotation(t *testing.T) {
	cs := controlplane.ForTestWith(t, controlplane.Options{AuthenticationConfig: true}, "cluster1", "cluster2")
	a, b := cs[0], cs[1]
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	federate(ctx, t, a, b)

	// The client: one call to B every 100 ms with the newest token A minted, minted anew every
	// 500 ms (a kubelet refreshes far less often: this makes every new key meet B at once).
	var (
		mu      sync.Mutex
		current = tokenOf(ctx, t, a, "team", "app", v1alpha1.FederatedAudience("cluster2"))
		calls   atomic.Int64
		failed  atomic.Int64
		lastErr atomic.Value
	)
	loop, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for loop.Err() == nil {
			tr, err := a.Clientset().CoreV1().ServiceAccounts("team").CreateToken(loop, "app", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
				Audiences: []string{v1alpha1.FederatedAudience("cluster2")}}}, metav1.CreateOptions{})
			if err == nil { // A restarting: keep the token it minted last, still valid
				mu.Lock()
				current = tr.Status.Token
				mu.Unlock()
			}
			sleep(loop, 500*time.Millisecond)
		}
	})
	wg.Go(func() {
		for loop.Err() == nil {
			mu.Lock()
			tok := current
			mu.Unlock()
			_, err := bearer(t, b, tok, "").AuthenticationV1().SelfSubjectReviews().Create(loop, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			if loop.Err() != nil {
				return
			}
			calls.Add(1)
			if err != nil {
				failed.Add(1)
				lastErr.Store(err.Error())
			}
			sleep(loop, 100*time.Millisecond)
		}
	})
	defer func() { stop(); wg.Wait() }()
	sleep(ctx, 2*time.Second)

	// (1) Publish the new key beside the old one.
	oldKey := readRSAKey(t, a.ServiceAccountKeyFile)
	newKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	newKeyFile := filepath.Join(dir, "sa-2.key")
	der, err := x509.MarshalPKCS8PrivateKey(newKey)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(newKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	both := filepath.Join(dir, "sa-both.pub")
	must(t, os.WriteFile(both, append(publicPEM(t, &oldKey.PublicKey), publicPEM(t, &newKey.PublicKey)...), 0o600))
	began := time.Now()
	must(t, a.RestartComponent(ctx, "kube-apiserver", "--service-account-key-file="+both))
	t.Logf("A publishes both keys (restart: %s)", time.Since(began).Round(100*time.Millisecond))

	// (2) B does not fetch A's keys again by itself (kubernetes issue 139769): its authenticator
	// for A is rebuilt, which fetches them, when its configuration changes. federate renders the
	// entry with A's key IDs, in a message that changes nothing else: A's new key changes it.
	sleep(ctx, 5*time.Second)
	kid := keyID(t, &newKey.PublicKey)
	kids := keyIDsOf(ctx, t, a)
	if want := sortedStrings(keyID(t, &oldKey.PublicKey), kid); !slices.Equal(kids, want) {
		t.Fatalf("A's key IDs %v, want %v", kids, want)
	}
	previous, err := os.ReadFile(b.AuthenticationConfigFile)
	must(t, err)
	began = time.Now()
	out := writeEntry(t, a, b, kids)
	if string(out) == string(previous) {
		t.Fatal("A's new key left B's entry unchanged")
	}
	if again := render(t, a, []string{kids[1], kids[0]}); string(again) != string(out) {
		t.Fatal("the same key IDs, in another order, render another entry: federate would rewrite B's file")
	}
	t.Logf("B's entry now names A's keys %v", kids)

	// B accepts a token signed with the new key before anything is signed with it.
	var canaryTries int
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		canaryTries++
		canary := sign(t, newKey, kid, map[string]any{
			"iss": a.Issuer, "aud": []string{v1alpha1.FederatedAudience("cluster2")},
			"sub": "system:serviceaccount:team:app", "iat": time.Now().Unix(), "nbf": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix(),
			"kubernetes.io": map[string]any{"namespace": "team", "serviceaccount": map[string]any{"name": "app"}},
		})
		_, err := bearer(t, b, canary, "").AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatalf("B never accepted a token signed with A's new key: %v", err)
	}
	t.Logf("B accepts the new key %s after %s (%d canary attempts)", kid, time.Since(began).Round(100*time.Millisecond), canaryTries)

	// (3) A signs with the new key.
	began = time.Now()
	must(t, a.RestartComponent(ctx, "kube-apiserver", "--service-account-key-file="+both, "--service-account-signing-key-file="+newKeyFile))
	t.Logf("A signs with the new key (restart: %s)", time.Since(began).Round(100*time.Millisecond))
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return headerKid(t, current) == kid, nil
	}); err != nil {
		t.Fatalf("the client never got a token signed with the new key: %v", err)
	}
	before := calls.Load()
	sleep(ctx, 3*time.Second)
	if calls.Load() <= before {
		t.Fatal("no call with the new key's tokens")
	}
	stop()
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d calls to B failed across the rotation; last: %v", n, calls.Load(), lastErr.Load())
	}
	t.Logf("%d calls to B across A's signing-key rotation, 0 failed", calls.Load())
}

// federate makes b trust a's issuer, as `kubectl mcsa federate cluster1 cluster2` does, and waits
// until it accepts a token of a.
func federate(ctx context.Context, t *testing.T, a, b *controlplane.Cluster) {
	t.Helper()
	if _, err := a.Clientset().RbacV1().ClusterRoleBindings().Create(ctx, grant.DiscoveryBinding(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	writeEntry(t, a, b, keyIDsOf(ctx, t, a))
	token := tokenOf(ctx, t, a, "team", "app", v1alpha1.FederatedAudience("cluster2"))
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if code, _ := anonymousGet(t, a.CAData, a.Server+"/.well-known/openid-configuration"); code != http.StatusOK {
			return false, nil
		}
		_, err := bearer(t, b, token, "").AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatalf("B never accepted A's token: %v", err)
	}
}

// render is b's authentication configuration trusting a's issuer with key IDs kids, as federate
// renders it.
func render(t *testing.T, a *controlplane.Cluster, kids []string) []byte {
	t.Helper()
	cfg := &apiserverv1.AuthenticationConfiguration{TypeMeta: metav1.TypeMeta{APIVersion: apiserverv1.SchemeGroupVersion.String(), Kind: "AuthenticationConfiguration"}}
	must(t, grant.SetAuthenticator(cfg, grant.Authenticator("cluster1", "cluster2", grant.Issuer{URL: a.Issuer,
		DiscoveryURL: a.Server + "/.well-known/openid-configuration", CertificateAuthority: string(a.CAData), KeyIDs: kids})))
	out, err := yaml.Marshal(cfg)
	must(t, err)
	return out
}

// writeEntry writes render's configuration to b's file, returning it.
func writeEntry(t *testing.T, a, b *controlplane.Cluster, kids []string) []byte {
	t.Helper()
	out := render(t, a, kids)
	must(t, os.WriteFile(b.AuthenticationConfigFile, out, 0o600))
	return out
}

// keyIDsOf are the key IDs of a's JWKS, sorted, read as federate reads them: from a's API
// server, with an admin's credentials.
func keyIDsOf(ctx context.Context, t *testing.T, a *controlplane.Cluster) []string {
	t.Helper()
	body, err := a.Clientset().Discovery().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	must(t, err)
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	must(t, json.Unmarshal(body, &set))
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return sortedStrings(kids...)
}

func sortedStrings(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

func readRSAKey(t *testing.T, path string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	}
	must(t, err)
	key, ok := k.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("%s: not an RSA key", path)
	}
	return key
}

func publicPEM(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	must(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// keyID is the key ID kube-apiserver gives a public key in its JWKS and tokens: the unpadded
// URL-safe base64 of the SHA-256 of its PKIX form.
func keyID(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	must(t, err)
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// sign is a compact RS256 JWS of claims with key ID kid.
func sign(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		must(t, err)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(map[string]string{"alg": "RS256", "kid": kid, "typ": "JWT"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	must(t, err)
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// headerKid is the key ID in a JWT's header.
func headerKid(t *testing.T, token string) string {
	t.Helper()
	head, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	must(t, err)
	var h struct {
		Kid string `json:"kid"`
	}
	must(t, json.Unmarshal(b, &h))
	return h.Kid
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
