// Package servingcert keeps a webhook's serving CA and certificate without cert-manager: it
// creates them, keeps them in a Secret shared by every replica, injects the CA bundle into a
// MutatingWebhookConfiguration, rotates both before they expire without a failed call, and
// serves the current certificate from memory through tls.Config.GetCertificate.
//
// The certificate is never written to disk: the rotator already holds it, and handing it to the
// TLS server directly needs no writable directory (the root filesystem is read-only, so that
// was an emptyDir), no file watcher lagging behind a rotation, and keeps the private key off
// any volume.
//
// Why not github.com/open-policy-agent/cert-controller, the well-kept library for this: its
// latest release (v0.16.0) is built against controller-runtime v0.23 and k8s.io v0.35 and pulls
// in kube-aggregator and OPA's constraint framework; and its rotator watches webhook
// configurations and Secrets through informers, which needs list and watch on every
// MutatingWebhookConfiguration of the cluster. This package needs no new dependency and only
// get, update and patch on one named Secret and one named MutatingWebhookConfiguration, by
// polling both with direct reads (two small GETs a minute).
package servingcert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	admissionregistrationv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// v1alpha1.RotateRequestedAnnotation on the Secret forces a rotation of the CA and then of the
// serving certificate, as safely as a scheduled one; the rotator removes it when it acts on it:
//
//	kubectl annotate secret mcsa-webhook-serving-cert -n multicluster-service-account \
//	  multicluster.admiralty.io/rotate-requested=now

// Keys of the Secret.
const (
	// KeyCABundle holds every CA to trust, current first: what is injected as caBundle.
	KeyCABundle = "ca.crt"
	// KeyCAKey is the current CA's private key.
	KeyCAKey = "ca.key"
)

// Event reasons, on the Secret.
const (
	ReasonCARotated         = "CARotated"
	ReasonCertificateIssued = "CertificateIssued"
	ReasonCARetired         = "CARetired"
	ReasonCABundleInjected  = "CABundleInjected"
)

// Timing tunes lifetimes and checks; zero fields take the defaults.
type Timing struct {
	// CAValidity is the CA's lifetime (default 5 years). Certificates are replaced after two
	// thirds of their lifetime.
	CAValidity time.Duration
	// CertValidity is the serving certificate's lifetime (default 90 days).
	CertValidity time.Duration
	// Overlap is how long a new CA is trusted before the serving certificate moves to it, and
	// how long the previous CA stays trusted after that (default 5 minutes). It must exceed
	// CheckInterval so that every replica sees each step.
	Overlap time.Duration
	// CheckInterval is how often the Secret and the webhook configuration are read (default 1
	// minute).
	CheckInterval time.Duration
}

// Options configure a Rotator.
type Options struct {
	// Namespace and SecretName name the Secret holding the certificates. The Secret must exist
	// (the manifests ship it empty) so that the rotator needs no right to create Secrets.
	Namespace  string
	SecretName string
	// WebhookConfigurationName is the MutatingWebhookConfiguration whose webhooks get the
	// CA bundle.
	WebhookConfigurationName string
	// Hosts are the DNS names and IP addresses the serving certificate is valid for.
	Hosts []string
	// FieldOwner is the field manager of every write.
	FieldOwner string
	Timing
}

// retryInterval bounds the wait after a failed check.
const retryInterval = 2 * time.Second

// Rotator keeps the certificates. It is a manager Runnable that every replica runs (it needs
// no leader election: all writes are optimistic and converge on the Secret's content).
type Rotator struct {
	opts     Options
	hosts    hostNames
	reader   client.Reader
	writer   client.Writer
	recorder events.EventRecorder
	log      logr.Logger
	now      func() time.Time

	// serving is the certificate presented to clients, nil until the first good check. A
	// tls.Certificate carries the certificate and its key together, and replacing the pointer
	// swaps both at once: a handshake gets the previous pair or the new one, never a
	// certificate with the other's key.
	serving atomic.Pointer[tls.Certificate]
	// injected is the CA bundle last seen in (or written to) the webhook configuration.
	injected atomic.Pointer[[]*x509.Certificate]
}

// New returns a Rotator. reader must read from the API server directly (not a cache), so that
// the rotator needs no list or watch rights.
func New(opts Options, reader client.Reader, writer client.Writer, recorder events.EventRecorder, log logr.Logger) (*Rotator, error) {
	t := &opts.Timing
	if t.CAValidity == 0 {
		t.CAValidity = 5 * 365 * 24 * time.Hour
	}
	if t.CertValidity == 0 {
		t.CertValidity = 90 * 24 * time.Hour
	}
	if t.Overlap == 0 {
		t.Overlap = 5 * time.Minute
	}
	if t.CheckInterval == 0 {
		t.CheckInterval = time.Minute
	}
	switch {
	case opts.Namespace == "" || opts.SecretName == "" || opts.WebhookConfigurationName == "":
		return nil, errors.New("servingcert: namespace, secret and webhook configuration names are required")
	case len(opts.Hosts) == 0:
		return nil, errors.New("servingcert: the serving certificate needs at least one host name")
	case t.Overlap <= t.CheckInterval:
		return nil, fmt.Errorf("servingcert: overlap (%s) must exceed the check interval (%s)", t.Overlap, t.CheckInterval)
	case t.CertValidity > t.CAValidity || 3*t.Overlap >= t.CertValidity:
		return nil, errors.New("servingcert: lifetimes must satisfy 3×overlap < certificate validity ≤ CA validity")
	}
	return &Rotator{opts: opts, hosts: parseHosts(opts.Hosts), reader: reader, writer: writer, recorder: recorder, log: log, now: time.Now}, nil
}

// NeedLeaderElection is false: every replica serves, so every replica keeps its certificate.
func (r *Rotator) NeedLeaderElection() bool { return false }

// Start checks the certificates every CheckInterval until ctx ends.
func (r *Rotator) Start(ctx context.Context) error {
	for {
		next := r.opts.CheckInterval
		if err := r.check(ctx); err != nil {
			switch {
			case ctx.Err() != nil:
				return nil
			case apierrors.IsConflict(err):
				// Another replica wrote the Secret first; adopt its result at once.
				r.log.V(1).Info("The serving-certificate Secret changed meanwhile; checking again", "error", err.Error())
			default:
				r.log.Error(err, "Checking the webhook serving certificate")
			}
			next = min(next, retryInterval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next):
		}
	}
}

// GetCertificate returns the current serving certificate; use it as the webhook server's
// tls.Config.GetCertificate. It is called on every handshake, so a rotation applies to the next
// connection without a restart.
func (r *Rotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert := r.serving.Load()
	if cert == nil {
		// Failing the handshake beats serving a certificate that nothing trusts.
		return nil, errors.New("the webhook serving certificate is not ready yet")
	}
	return cert, nil
}

// ReadyCheck is a healthz.Checker: ready when the certificate being served is valid and chains
// to the CA bundle injected into the webhook configuration.
func (r *Rotator) ReadyCheck(_ *http.Request) error {
	cert := r.serving.Load()
	if cert == nil {
		return errors.New("no serving certificate yet")
	}
	injected := r.injected.Load()
	if injected == nil {
		return fmt.Errorf("CA bundle not injected into MutatingWebhookConfiguration %s yet", r.opts.WebhookConfigurationName)
	}
	if !verifies(cert.Leaf, *injected, r.now()) {
		return fmt.Errorf("serving certificate expired or not trusted by the CA bundle of MutatingWebhookConfiguration %s", r.opts.WebhookConfigurationName)
	}
	return nil
}

// check brings the Secret, the webhook configuration and the served certificate one step
// forward.
func (r *Rotator) check(ctx context.Context) error {
	secret := &corev1.Secret{}
	key := client.ObjectKey{Namespace: r.opts.Namespace, Name: r.opts.SecretName}
	if err := r.reader.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("secret %s not found: apply manifests/webhook, which ships it empty for the webhook to fill", key)
		}
		return fmt.Errorf("reading secret %s: %w", key, err)
	}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := r.reader.Get(ctx, client.ObjectKey{Name: r.opts.WebhookConfigurationName}, mwc); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("MutatingWebhookConfiguration %s not found: apply manifests/webhook", r.opts.WebhookConfigurationName)
		}
		return fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", r.opts.WebhookConfigurationName, err)
	}
	if len(mwc.Webhooks) == 0 {
		return fmt.Errorf("MutatingWebhookConfiguration %s has no webhooks", mwc.Name)
	}
	injected := sharedCABundle(mwc)

	current := material{
		caBundle: secret.Data[KeyCABundle],
		caKey:    secret.Data[KeyCAKey],
		cert:     secret.Data[corev1.TLSCertKey],
		key:      secret.Data[corev1.TLSPrivateKeyKey],
	}
	_, rotate := secret.Annotations[v1alpha1.RotateRequestedAnnotation]
	next, changes, err := plan(planInput{
		now: r.now(), current: current, injected: injected, rotateCA: rotate,
		timing: r.opts.Timing, hosts: r.hosts,
	})
	if err != nil {
		return err
	}
	if !next.equal(current) || rotate {
		updated := secret.DeepCopy()
		delete(updated.Annotations, v1alpha1.RotateRequestedAnnotation)
		if updated.Data == nil {
			updated.Data = map[string][]byte{}
		}
		updated.Data[KeyCABundle], updated.Data[KeyCAKey] = next.caBundle, next.caKey
		updated.Data[corev1.TLSCertKey], updated.Data[corev1.TLSPrivateKeyKey] = next.cert, next.key
		// An optimistic update: when replicas race, one wins and the others adopt its result.
		if err := r.writer.Update(ctx, updated, client.FieldOwner(r.opts.FieldOwner)); err != nil {
			return fmt.Errorf("updating secret %s: %w", key, err)
		}
		for _, c := range changes {
			r.log.Info("Webhook certificates changed", "reason", c.reason, "message", c.message, "secret", key)
			r.recorder.Eventf(updated, nil, corev1.EventTypeNormal, c.reason, "Rotate", c.message)
		}
		secret = updated
	}

	if !bytes.Equal(injected, next.caBundle) {
		if err := r.inject(ctx, mwc, next.caBundle); err != nil {
			return err
		}
		injected = next.caBundle
		r.recorder.Eventf(secret, nil, corev1.EventTypeNormal, ReasonCABundleInjected, "Inject",
			"CA bundle injected into MutatingWebhookConfiguration %s", mwc.Name)
	}
	trusted, err := parseCerts(injected)
	if err != nil {
		return err
	}
	r.injected.Store(&trusted)

	// Serve only a certificate that the injected bundle trusts.
	leaf, err := parseKeyPair(next.cert, next.key)
	if err != nil {
		return err
	}
	if !verifies(leaf.cert, trusted, r.now()) {
		return errors.New("the serving certificate is not trusted by the injected CA bundle")
	}
	return r.serve(next, leaf.cert)
}

// sharedCABundle is the caBundle common to every webhook of the configuration, nil if they
// differ.
func sharedCABundle(mwc *admissionregistrationv1.MutatingWebhookConfiguration) []byte {
	bundle := mwc.Webhooks[0].ClientConfig.CABundle
	for _, w := range mwc.Webhooks[1:] {
		if !bytes.Equal(w.ClientConfig.CABundle, bundle) {
			return nil
		}
	}
	return bundle
}

// inject sets caBundle in every webhook of the configuration with a server-side apply that
// owns nothing else: re-applying the shipped manifest, which has no caBundle, keeps it.
func (r *Rotator) inject(ctx context.Context, mwc *admissionregistrationv1.MutatingWebhookConfiguration, bundle []byte) error {
	ac := admissionregistrationv1ac.MutatingWebhookConfiguration(mwc.Name)
	for _, w := range mwc.Webhooks {
		ac.WithWebhooks(admissionregistrationv1ac.MutatingWebhook().
			WithName(w.Name).
			WithClientConfig(admissionregistrationv1ac.WebhookClientConfig().WithCABundle(bundle...)))
	}
	if err := r.writer.Apply(ctx, ac, client.FieldOwner(r.opts.FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("injecting the CA bundle into MutatingWebhookConfiguration %s: %w", mwc.Name, err)
	}
	r.log.Info("Injected the CA bundle", "mutatingWebhookConfiguration", mwc.Name)
	return nil
}

// serve makes m's certificate, whose parsed form is leaf, the one presented from the next
// handshake on.
func (r *Rotator) serve(m material, leaf *x509.Certificate) error {
	if cur := r.serving.Load(); cur != nil && cur.Leaf.Equal(leaf) {
		// The same certificate has the same key (X509KeyPair checks that they match), so there
		// is nothing to swap; keeping the pointer spares a parse at every check.
		return nil
	}
	pair, err := tls.X509KeyPair(m.cert, m.key)
	if err != nil {
		return err
	}
	// ReadyCheck reads the Leaf; X509KeyPair sets it, unless GODEBUG x509keypairleaf=0.
	pair.Leaf = leaf
	r.serving.Store(&pair)
	r.log.V(1).Info("Serving a new certificate", "serial", leaf.SerialNumber.Text(16), "issuer", leaf.Issuer.CommonName, "notAfter", leaf.NotAfter)
	return nil
}
