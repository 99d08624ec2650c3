package importer

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
)

// testCA is a self-signed CA certificate (PEM) named cn, valid until notAfter.
func testCA(t *testing.T, cn string, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: notAfter.Add(-10 * 365 * 24 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// cat concatenates PEM bundles.
func cat(bundles ...[]byte) []byte { return bytes.Join(bundles, nil) }

func TestMergeCABundles(t *testing.T) {
	now := t0
	old, next := testCA(t, "old", now.Add(24*time.Hour)), testCA(t, "new", now.Add(10*365*24*time.Hour))
	expired := testCA(t, "expired", now.Add(-time.Hour))
	var many [][]byte
	for i := range maxPublishedCerts + 4 {
		many = append(many, testCA(t, "many-"+string(rune('a'+i)), now.Add(time.Hour)))
	}
	commented := cat([]byte("# B's CA\n"), old)
	tests := []struct {
		name           string
		own, published []byte
		want           []byte
	}{
		{"nothing published: the credential's, as it is", commented, nil, commented},
		{"the same CA published: the credential's, as it is", commented, old, commented},
		{"published garbage: the credential's", old, []byte("not PEM"), old},
		{"overlap: old and new, the credential's first", old, cat(old, next), cat(old, next)},
		{"overlap published new first: the credential's first all the same", old, cat(next, old), cat(old, next)},
		{"rotation over (B publishes the new only): the old kept until it expires", cat(old, next), next, cat(old, next)},
		{"comments dropped when the bundle changes", commented, next, cat(old, next)},
		{"duplicates dropped", cat(old, old), old, old},
		{"expired CA dropped from the credential", cat(expired, old), nil, old},
		{"expired CA never added", old, cat(expired, next), cat(old, next)},
		{"every CA expired, nothing new: the credential's, not an empty bundle (the system's roots)", expired, expired, expired},
		{"an expired credential CA replaced by the published one", expired, next, next},
		{"blocks that are not certificates skipped", old, cat([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), next), cat(old, next)},
		{"at most maxPublishedCerts published certificates", old, cat(many...), cat(append([][]byte{old}, many[:maxPublishedCerts]...)...)},
		{"no CA in the credential (the system's roots): B's cluster CA is not added", nil, next, nil},
		{"a credential CA that does not parse is left alone", []byte("CA"), next, []byte("CA")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mergeCABundles(tt.own, tt.published, now)
			if !bytes.Equal(got, tt.want) {
				t.Errorf("merged:\n%s\nwant:\n%s", names(got), names(tt.want))
			}
			// Merging again with what B publishes changes nothing: the credential written back
			// with the merged bundle is stable.
			if again := mergeCABundles(got, tt.published, now); !bytes.Equal(again, got) {
				t.Errorf("not stable: merged again:\n%s\nfirst:\n%s", names(again), names(got))
			}
		})
	}
}

// names are a bundle's certificates' common names, for failure messages.
func names(bundle []byte) string {
	certs := parseCerts(bundle, 0)
	if len(certs) == 0 {
		return "(no certificate) " + string(bundle)
	}
	var n []string
	for _, c := range certs {
		n = append(n, c.Subject.CommonName)
	}
	return strings.Join(n, ",")
}

// logLines collects what a logger writes.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) context() context.Context {
	return logf.IntoContext(context.Background(), funcr.New(func(_, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, args)
	}, funcr.Options{}))
}

func (l *logLines) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// TestLearnCA: the credential reads the bundle B publishes at most once per TTL; a refusal or a
// missing ConfigMap falls back to the credential's CA and is logged once; an outage of B keeps
// what was read.
func TestLearnCA(t *testing.T) {
	f := newFixture(t)
	old, next := testCA(t, "old", t0.Add(24*time.Hour)), testCA(t, "new", t0.Add(48*time.Hour))
	rem := f.r.clusters.static["cluster2"]
	rem.name, rem.caData, rem.published = "cluster2", old, &publishedCA{}
	reads := 0
	var answer error
	f.remote.PrependReactor("get", "configmaps", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.(clienttesting.GetAction).GetName() != grant.RootCAConfigMap {
			return false, nil, nil
		}
		reads++
		if answer != nil {
			return true, nil, answer
		}
		return false, nil, nil
	})
	var logs logLines
	ctx := logs.context()
	learn := func(what string, wantReads int, want []byte) {
		t.Helper()
		f.r.learnCA(ctx, rem, f.clock.Now())
		if reads != wantReads {
			t.Errorf("%s: %d reads of B, want %d", what, reads, wantReads)
		}
		if got := f.r.caBundle(rem); !bytes.Equal(got, want) {
			t.Errorf("%s: bundle %s, want %s", what, names(got), names(want))
		}
	}
	recheck := f.r.opts.CABundleRecheck

	learn("not published yet", 1, old)
	if logs.count("publishes no CA bundle") != 1 {
		t.Errorf("a missing ConfigMap not logged once: %q", logs.lines)
	}
	publish := func(bundle []byte) {
		t.Helper()
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: grant.Namespace, Name: grant.RootCAConfigMap}, Data: map[string]string{grant.RootCAKey: string(bundle)}}
		if err := f.remote.Tracker().Add(cm); err != nil {
			if err := f.remote.Tracker().Update(corev1.SchemeGroupVersion.WithResource("configmaps"), cm, grant.Namespace); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(cat(old, next))
	learn("published within the TTL: not read", 1, old)
	f.clock.Step(recheck)
	learn("published, read after the recheck period", 2, cat(old, next))
	f.clock.Step(recheck / 2)
	learn("half a period later: not read", 2, cat(old, next))

	answer = errors.New("connection refused")
	f.clock.Step(recheck)
	learn("B unreachable: what was read stays", 3, cat(old, next))
	f.clock.Step(recheck)
	learn("still unreachable", 4, cat(old, next))
	if n := logs.count("Cannot read the CA bundle"); n != 1 {
		t.Errorf("an outage logged %d times, want once", n)
	}

	answer = apierrors.NewForbidden(corev1.Resource("configmaps"), grant.RootCAConfigMap, errors.New("no grant"))
	for i := range 3 {
		f.clock.Step(recheck)
		learn("forbidden: the credential's CA", 5+i, old)
	}
	if n := logs.count("forbids reading the CA bundle"); n != 1 {
		t.Errorf("a refusal logged %d times, want once: %q", n, logs.lines)
	}
	if n := logs.count(grant.BootstrapCommand("cluster1", "cluster2")); n != 1 {
		t.Errorf("the refusal does not name the remedy: %q", logs.lines)
	}

	answer = nil
	f.clock.Step(recheck)
	learn("granted again", 8, cat(old, next))
	answer = apierrors.NewForbidden(corev1.Resource("configmaps"), grant.RootCAConfigMap, errors.New("no grant"))
	f.clock.Step(recheck)
	learn("forbidden again, after a success", 9, old)
	if n := logs.count("forbids reading the CA bundle"); n != 2 {
		t.Errorf("a refusal after a success logged %d times in all, want twice", n)
	}
}

// TestCABundleReachesSecrets: when B publishes a new CA, the credential's reconcile reads it and
// rewrites the credential's secret, and every import's secret gets the merged bundle at its next
// reconcile (the secret digest differs); the credential comes back every recheck period.
func TestCABundleReachesSecrets(t *testing.T) {
	f := newFixture(t, newImport(testImport, "cluster2", "team", "sa"))
	old, next := testCA(t, "old", t0.Add(24*time.Hour)), testCA(t, "new", t0.Add(48*time.Hour))
	f.ca = string(old)
	f.restart()
	f.r.clusters.static["cluster2"].published = &publishedCA{}
	credKey := client.ObjectKey{Namespace: v1alpha1.DefaultNamespace, Name: "cluster2"}
	// The fake API server sets no generation; tokens are recorded for one.
	cred := &v1alpha1.ServiceAccountImport{}
	if err := f.local.Get(context.Background(), credKey, cred); err != nil {
		t.Fatal(err)
	}
	cred.Generation = 1
	f.update(cred)
	reconcileCred := func() {
		t.Helper()
		res, err := f.r.Reconcile(context.Background(), reconcile.Request{NamespacedName: credKey})
		if err != nil {
			t.Fatal(err)
		}
		if res.RequeueAfter <= 0 || res.RequeueAfter > f.r.opts.CABundleRecheck {
			t.Errorf("credential requeued in %s, want within the recheck period %s", res.RequeueAfter, f.r.opts.CABundleRecheck)
		}
	}
	caOf := func(key client.ObjectKey) []byte {
		t.Helper()
		s := &corev1.Secret{}
		if err := f.local.Get(context.Background(), client.ObjectKey{Namespace: key.Namespace, Name: v1alpha1.SecretName(key.Name)}, s); err != nil {
			t.Fatal(err)
		}
		d := credential.Parse(s.Data)
		if !bytes.Contains(s.Data[v1alpha1.SecretKeyConfig], []byte("certificate-authority-data")) {
			t.Errorf("secret %s: its kubeconfig has no CA inline", key)
		}
		return d.CAData
	}
	importKey := client.ObjectKey{Namespace: testNS, Name: testImport}

	reconcileCred()
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := caOf(importKey); !bytes.Equal(got, old) {
		t.Fatalf("import's CA %s, want the credential's", names(got))
	}

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: grant.Namespace, Name: grant.RootCAConfigMap}, Data: map[string]string{grant.RootCAKey: string(cat(old, next))}}
	if err := f.remote.Tracker().Add(cm); err != nil {
		t.Fatal(err)
	}
	f.clock.Step(f.r.opts.CABundleRecheck)
	reconcileCred()
	if got := caOf(credKey); !bytes.Equal(got, cat(old, next)) {
		t.Errorf("credential's CA %s, want old and new", names(got))
	}
	f.secretReads = 0
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := caOf(importKey); !bytes.Equal(got, cat(old, next)) {
		t.Errorf("import's CA %s, want old and new", names(got))
	}
	if f.secretReads != 1 {
		t.Errorf("%d secrets read whole for the new CA, want 1 (the digest tells it changed)", f.secretReads)
	}
	f.secretReads = 0
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if f.secretReads != 0 {
		t.Errorf("%d secrets read whole once current, want none", f.secretReads)
	}
	if len(f.requested) != 2 {
		t.Errorf("%d tokens minted, want 2 (the credential's and the import's first): a new CA needs no token", len(f.requested))
	}
}

// TestPublishedCAOutlivesClients: the client built from a changed credential keeps what was read
// of B's bundle, so that writing the merged bundle back does not make the importer read B again.
func TestPublishedCAOutlivesClients(t *testing.T) {
	cred := &v1alpha1.ServiceAccountImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: v1alpha1.DefaultNamespace, Name: "cluster3", UID: "cred3", Generation: 1},
		Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster3", Namespace: grant.Namespace, Name: "cluster1"},
	}
	secret, err := credential.NewSecret(cred, credential.Data{ClusterName: "cluster3", Server: "https://cluster3.example", Namespace: grant.Namespace, Token: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, cred, secret)
	get := func() *remote {
		t.Helper()
		r, err := f.r.clusters.get(context.Background(), "cluster3")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := get()
	if first.published == nil {
		t.Fatal("a credential's cluster does not learn its CA")
	}
	secret.Data[v1alpha1.SecretKeyToken] = []byte("t2")
	if err := f.local.Update(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	if second := get(); second == first || second.published != first.published {
		t.Errorf("rebuilt client: %p, published %p; first %p, published %p", second, second.published, first, first.published)
	}
	secret.Data[v1alpha1.SecretKeyServer] = []byte("https://elsewhere.example")
	if err := f.local.Update(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	if moved := get(); moved.published == first.published {
		t.Error("another server keeps what the previous one published")
	}
}
