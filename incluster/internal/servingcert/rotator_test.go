package servingcert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

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

// serveTLS serves TLS on loopback with r.GetCertificate, as the webhook server does, and
// returns its address. Every connection only completes a handshake.
func serveTLS(t *testing.T, r *Rotator) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: r.GetCertificate, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		// Closing is what ends the accept loop; a listener that only accepted has nothing to lose.
		_ = l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				// The server side only serves: a failed handshake is the client's to report
				// (handshake), and a connection without its deadline is not served at all.
				if conn.SetDeadline(time.Now().Add(10*time.Second)) == nil {
					_ = conn.(*tls.Conn).Handshake()
				}
			})
		}
	})
	return l.Addr().String()
}

// handshake connects to addr and returns the certificate served. The handshake proves that the
// server holds the certificate's key (TLS signs it with that key); with roots it also checks
// that the certificate chains to them at now and is valid for the address.
func handshake(addr string, roots []*x509.Certificate, now time.Time) (*x509.Certificate, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Time: func() time.Time { return now }}
	if roots == nil {
		cfg.InsecureSkipVerify = true //nolint:gosec // checks the key only; callers verify the chain otherwise
	} else {
		cfg.RootCAs = x509.NewCertPool()
		for _, c := range roots {
			cfg.RootCAs.AddCert(c)
		}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func newTestRotator(t *testing.T, c client.Client, clock *fakeClock) *Rotator {
	t.Helper()
	r, err := New(Options{
		Namespace: testNamespace, SecretName: testSecret, WebhookConfigurationName: testWebhooks,
		Hosts: []string{"127.0.0.1"}, FieldOwner: "test", Timing: testTiming,
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
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
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
			addr := serveTLS(t, r)
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
				if _, err := handshake(addr, nil, time.Now()); err == nil {
					t.Fatal("a handshake succeeded without certificate")
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
			served, err := handshake(addr, certsOf(t, mwc.Webhooks[0].ClientConfig.CABundle), time.Now())
			if err != nil {
				t.Fatalf("handshake trusting the injected bundle: %v", err)
			}
			if !served.Equal(mustParse(t, material{secret.Data[KeyCABundle], secret.Data[KeyCAKey],
				secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey]}).leaf.cert) {
				t.Fatal("the served certificate is not the Secret's")
			}
		})
	}
}

// TestForcedRotationServes checks over TLS that each new certificate of a forced rotation is
// served from the next handshake on, and that handshakes running meanwhile all succeed: the
// certificate and its key are swapped together.
func TestForcedRotationServes(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(shippedObjects()...).Build()
	clock := &fakeClock{time.Now()}
	r := newTestRotator(t, c, clock)
	addr := serveTLS(t, r)
	if _, err := handshake(addr, nil, clock.now()); err == nil {
		t.Fatal("a handshake succeeded before the first check")
	}
	if err := r.check(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := handshake(addr, nil, clock.now())
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: testSecret}, secret); err != nil {
		t.Fatal(err)
	}
	firstCAs, _ := parseCerts(secret.Data[KeyCABundle])

	secret.Annotations = map[string]string{v1alpha1.RotateRequestedAnnotation: "now"}
	if err := c.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	// Handshakes in a loop while the rotation runs: a certificate served with the other's key
	// fails one.
	var (
		stop       atomic.Bool
		handshakes atomic.Int64
		firstErr   atomic.Pointer[error]
		wg         sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				if _, err := handshake(addr, nil, time.Now()); err != nil {
					firstErr.CompareAndSwap(nil, &err)
				}
				handshakes.Add(1)
			}
		})
	}
	// Stage the CA, move the serving certificate, retire the previous CA; after each step the
	// served certificate is trusted by the bundle injected.
	for range 3 {
		if err := r.check(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := handshake(addr, injected(t, c), clock.now()); err != nil {
			t.Fatalf("handshake trusting the injected bundle: %v", err)
		}
		clock.advance(testTiming.Overlap + time.Minute)
	}
	// Enough handshakes to overlap the swap. Fewer after 10 s is no failure: the test fails on
	// a failed handshake, and those made still span the swap.
	_ = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return handshakes.Load() >= 50, nil
	})
	stop.Store(true)
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		t.Fatalf("a handshake failed during the rotation: %v", *err)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: testSecret}, secret); err != nil {
		t.Fatal(err)
	}
	if _, ok := secret.Annotations[v1alpha1.RotateRequestedAnnotation]; ok {
		t.Error("rotation request left on the Secret")
	}
	served, err := handshake(addr, injected(t, c), clock.now())
	if err != nil {
		t.Fatal(err)
	}
	if served.Equal(first) {
		t.Fatal("still serving the first certificate")
	}
	if served.CheckSignatureFrom(firstCAs[0]) == nil || r.ReadyCheck(nil) != nil {
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
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(shippedObjects()...).Build()
	clock := &fakeClock{time.Now()}
	replicas := []*Rotator{newTestRotator(t, c, clock), newTestRotator(t, c, clock)}
	addrs := []string{serveTLS(t, replicas[0]), serveTLS(t, replicas[1])}
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
		for i := range replicas {
			served, err := handshake(addrs[i], bundle, clock.now())
			if err != nil {
				t.Errorf("replica %d serves a certificate the injected bundle does not trust (%v)", i, err)
				continue
			}
			if settled && !bytes.Equal(served.Raw, mustParse(t, material{secret.Data[KeyCABundle], secret.Data[KeyCAKey],
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
	secret.Annotations = map[string]string{v1alpha1.RotateRequestedAnnotation: "now"}
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

func certsOf(t *testing.T, bundle []byte) []*x509.Certificate {
	t.Helper()
	certs, err := parseCerts(bundle)
	if err != nil || len(certs) == 0 {
		t.Fatalf("no CA in the bundle (%v)", err)
	}
	return certs
}

// injected is the CA bundle of the webhook configuration.
func injected(t *testing.T, c client.Client) []*x509.Certificate {
	t.Helper()
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: testWebhooks}, mwc); err != nil {
		t.Fatal(err)
	}
	return certsOf(t, mwc.Webhooks[0].ClientConfig.CABundle)
}
