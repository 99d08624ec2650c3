package servingcert

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestWriteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	for _, tc := range []struct {
		name        string
		files       map[string][]byte
		wantChanged bool
	}{
		{name: "first write", files: map[string][]byte{"tls.crt": []byte("c1"), "tls.key": []byte("k1")}, wantChanged: true},
		{name: "same content", files: map[string][]byte{"tls.crt": []byte("c1"), "tls.key": []byte("k1")}, wantChanged: false},
		{name: "new content", files: map[string][]byte{"tls.crt": []byte("c2"), "tls.key": []byte("k2")}, wantChanged: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed, err := writeFiles(dir, tc.files)
			if err != nil {
				t.Fatal(err)
			}
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			for name, want := range tc.files {
				if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s = %q (%v), want %q", name, got, err, want)
				}
				if target, err := os.Readlink(filepath.Join(dir, name)); err != nil || target != filepath.Join(dataLink, name) {
					t.Errorf("%s is not a link through %s: %q %v", name, dataLink, target, err)
				}
			}
			// Exactly one generation of files is left.
			if gens, _ := filepath.Glob(filepath.Join(dir, "..gen-*")); len(gens) != 1 {
				t.Errorf("generations left: %v", gens)
			}
		})
	}
}

const (
	testNamespace = "multicluster-service-account"
	testSecret    = "mcsa-webhook-serving-cert"
	testWebhooks  = "mcsa-automount"
)

func shippedObjects() []client.Object {
	return []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: testSecret}},
		&admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: testWebhooks},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{
				Name:                    "automount.multicluster.admiralty.io",
				ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:9443/mutate-v1-pod")},
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
				AdmissionReviewVersions: []string{"v1"},
			}},
		},
	}
}

// fakeClock is the time of a test, advanced by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestRotator(t *testing.T, c client.Client, clock *fakeClock) *Rotator {
	t.Helper()
	r, err := New(Options{
		Namespace: testNamespace, SecretName: testSecret, WebhookConfigurationName: testWebhooks,
		Hosts: []string{"127.0.0.1"}, CertDir: t.TempDir(), FieldOwner: "test", Timing: testTiming,
	}, c, c, events.NewFakeRecorder(100), logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if clock != nil {
		r.now = clock.now
	}
	return r
}

// TestCheck runs the rotator's check against an in-memory API (the real API server is in
// package automount's end-to-end tests).
func TestCheck(t *testing.T) {
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	for _, tc := range []struct {
		name string
		// objects are what exists; edit changes them before the check.
		objects []client.Object
		edit    func(t *testing.T, c client.Client)
		wantErr string
	}{
		{name: "no Secret", objects: shippedObjects()[1:], wantErr: "apply manifests/webhook"},
		{name: "no webhook configuration", objects: shippedObjects()[:1], wantErr: "MutatingWebhookConfiguration mcsa-automount not found"},
		{name: "shipped objects"},
		{
			name: "caBundle wiped after injection",
			edit: func(t *testing.T, c client.Client) {
				mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
				if err := c.Get(ctx, client.ObjectKey{Name: testWebhooks}, mwc); err != nil {
					t.Fatal(err)
				}
				mwc.Webhooks[0].ClientConfig.CABundle = nil
				if err := c.Update(ctx, mwc); err != nil {
					t.Fatal(err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objects := tc.objects
			if objects == nil {
				objects = shippedObjects()
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objects...).Build()
			r := newTestRotator(t, c, nil)
			if tc.edit != nil {
				if err := r.check(ctx); err != nil {
					t.Fatal(err)
				}
				tc.edit(t, c)
				// Readiness reflects the last check, until the next one repairs it.
			}
			err := r.check(ctx)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one saying %q", err, tc.wantErr)
				}
				if r.ReadyCheck(nil) == nil {
					t.Fatal("ready without certificate")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := r.ReadyCheck(nil); err != nil {
				t.Fatalf("not ready: %v", err)
			}
			secret := &corev1.Secret{}
			mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: testSecret}, secret); err != nil {
				t.Fatal(err)
			}
			if err := c.Get(ctx, client.ObjectKey{Name: testWebhooks}, mwc); err != nil {
				t.Fatal(err)
			}
			if got := mwc.Webhooks[0].ClientConfig.CABundle; len(got) == 0 || !bytes.Equal(got, secret.Data[KeyCABundle]) {
				t.Fatal("the Secret's CA bundle is not injected")
			}
			served, err := r.GetCertificate(nil)
			if err != nil || !bytes.Equal(served.Certificate[0], mustParse(t, material{secret.Data[KeyCABundle], secret.Data[KeyCAKey],
				secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey]}).leaf.cert.Raw) {
				t.Fatalf("the served certificate is not the Secret's (%v)", err)
			}
		})
	}
}

// TestForcedRotationServes checks that the certificate watcher serves each new certificate
// that a forced rotation writes.
func TestForcedRotationServes(t *testing.T) {
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(shippedObjects()...).Build()
	clock := &fakeClock{time.Now()}
	r := newTestRotator(t, c, clock)
	if err := r.check(ctx); err != nil {
		t.Fatal(err)
	}
	first, _ := r.GetCertificate(nil)
	secret := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: testSecret}, secret); err != nil {
		t.Fatal(err)
	}
	firstCAs, _ := parseCerts(secret.Data[KeyCABundle])

	secret.Annotations = map[string]string{RotateRequestedAnnotation: "now"}
	if err := c.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	// Stage the CA, move the serving certificate, retire the previous CA.
	for range 3 {
		if err := r.check(ctx); err != nil {
			t.Fatal(err)
		}
		clock.advance(testTiming.Overlap + time.Minute)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: testSecret}, secret); err != nil {
		t.Fatal(err)
	}
	if _, ok := secret.Annotations[RotateRequestedAnnotation]; ok {
		t.Error("rotation request left on the Secret")
	}
	served, _ := r.GetCertificate(nil)
	if bytes.Equal(served.Certificate[0], first.Certificate[0]) {
		t.Fatal("still serving the first certificate")
	}
	if served.Leaf.CheckSignatureFrom(firstCAs[0]) == nil || r.ReadyCheck(nil) != nil {
		t.Fatal("not serving a certificate of the new CA, or not ready")
	}
	if bundle, _ := parseCerts(secret.Data[KeyCABundle]); len(bundle) != 1 {
		t.Errorf("%d CAs trusted after the rotation, want 1", len(bundle))
	}
}

// TestReplicasConverge runs two replicas' rotators on one API: whichever writes first, both
// serve the Secret's certificate, through a forced rotation too.
func TestReplicasConverge(t *testing.T) {
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(shippedObjects()...).Build()
	clock := &fakeClock{time.Now()}
	replicas := []*Rotator{newTestRotator(t, c, clock), newTestRotator(t, c, clock)}
	// trusted checks that every replica serves a certificate that the injected bundle trusts;
	// settled, that they all serve the Secret's.
	trusted := func(t *testing.T, settled bool) {
		t.Helper()
		secret := &corev1.Secret{}
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: testSecret}, secret); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKey{Name: testWebhooks}, mwc); err != nil {
			t.Fatal(err)
		}
		bundle, _ := parseCerts(mwc.Webhooks[0].ClientConfig.CABundle)
		for i, r := range replicas {
			served, err := r.GetCertificate(nil)
			if err != nil || !verifies(served.Leaf, bundle, clock.now()) {
				t.Errorf("replica %d serves a certificate the injected bundle does not trust (%v)", i, err)
			}
			if settled && !bytes.Equal(served.Leaf.Raw, mustParse(t, material{secret.Data[KeyCABundle], secret.Data[KeyCAKey],
				secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey]}).leaf.cert.Raw) {
				t.Errorf("replica %d does not serve the Secret's certificate", i)
			}
		}
	}
	// checkAll runs each replica's check in turn; the other lags until its own check.
	checkAll := func(t *testing.T) {
		t.Helper()
		for _, r := range replicas {
			if err := r.check(ctx); err != nil {
				t.Fatal(err)
			}
			trusted(t, false)
		}
	}
	for _, r := range replicas {
		if err := r.check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	trusted(t, true)

	secret := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: testSecret}, secret); err != nil {
		t.Fatal(err)
	}
	firstCA := firstCert(t, secret.Data[KeyCABundle])
	secret.Annotations = map[string]string{RotateRequestedAnnotation: "now"}
	if err := c.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	// Each replica checks once per CheckInterval, one after the other: through the whole
	// rotation, both serve what the API server trusts.
	for range 3 * int(testTiming.Overlap/testTiming.CheckInterval) {
		clock.advance(testTiming.CheckInterval)
		checkAll(t)
	}
	checkAll(t)
	trusted(t, true)
	if err := c.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: testSecret}, secret); err != nil {
		t.Fatal(err)
	}
	if bundle, _ := parseCerts(secret.Data[KeyCABundle]); len(bundle) != 1 || bundle[0].Equal(firstCA) {
		t.Errorf("after the rotation, %d CAs trusted; want only the new one", len(bundle))
	}
}

func firstCert(t *testing.T, bundle []byte) *x509.Certificate {
	t.Helper()
	certs, err := parseCerts(bundle)
	if err != nil || len(certs) == 0 {
		t.Fatalf("no CA in the bundle (%v)", err)
	}
	return certs[0]
}
