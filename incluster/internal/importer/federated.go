package importer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
)

// Federated imports (v1alpha1.ModeFederated). The importer mints nothing in B and stores no
// token: it writes the import's ConfigMap (where B is, whom to act as) and checks, link by link,
// the chain a pod's call follows: B accepts A's tokens (a SelfSubjectReview in B with a short
// token of the importer's own service account, audience B: the canary), then B's RBAC lets the
// import's namespace act as the service account (a LocalSubjectAccessReview in B, which
// `allow --federated` lets the importer make). Pods authenticate with their own projected
// token; the status only reports.

// canaryTTL is how long one canary answer serves every import of a cluster, at most: never
// longer than Options.FederationRecheck.
const canaryTTL = 30 * time.Second

// ownTokenSeconds is the lifetime of the importer's own tokens for remote clusters.
const ownTokenSeconds = 600

// ownTokenSource mints tokens of the importer's own service account in A for one audience.
type ownTokenSource struct {
	client          client.Client
	namespace, name string
	audience        string
	timeout         time.Duration
}

func newOwnTokenSource(c client.Client, namespace, name, audience string) oauth2.TokenSource {
	return &ownTokenSource{client: c, namespace: namespace, name: name, audience: audience, timeout: 30 * time.Second}
}

// Token implements oauth2.TokenSource. client-go's cached token source calls it when the
// previous token is about to expire, or after B answered 401.
func (s *ownTokenSource) Token() (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: []string{s.audience}, ExpirationSeconds: ptr.To[int64](ownTokenSeconds)}}
	if err := s.client.SubResource("token").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: s.name}}, tr); err != nil {
		return nil, fmt.Errorf("a token of the importer's own service account %s/%s for %s: %w", s.namespace, s.name, s.audience, err)
	}
	return &oauth2.Token{AccessToken: tr.Status.Token, TokenType: "Bearer", Expiry: tr.Status.ExpirationTimestamp.Time}, nil
}

// canaryCache remembers the last canary answer of a cluster.
type canaryCache struct {
	mu   sync.Mutex
	at   time.Time
	user string
	err  error
}

// canary asks B who the importer is there, through B's authenticator for A's issuer.
func (r *Reconciler) canary(ctx context.Context, rem *remote, now time.Time) (string, error) {
	c := &rem.canary
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && now.Sub(c.at) < min(canaryTTL, r.opts.FederationRecheck) && now.After(c.at) {
		return c.user, c.err
	}
	review, err := rem.federated.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	c.at, c.user, c.err = now, "", err
	if err == nil {
		c.user = review.Status.UserInfo.Username
	}
	return c.user, c.err
}

// reconcileFederated writes a federated import's ConfigMap and reports on the chain.
func (r *Reconciler) reconcileFederated(ctx context.Context, imp *v1alpha1.ServiceAccountImport) (*outcome, error) {
	existing, err := r.ownedConfigMap(ctx, imp)
	if errors.Is(err, errSecretConflict) {
		name := v1alpha1.FederatedConfigMapName(imp.Name)
		return &outcome{imp: imp, reason: v1alpha1.ReasonSecretConflict, requeueAfter: r.opts.MaxRetryDelay,
			message: fmt.Sprintf("ConfigMap %s/%s exists and is not controlled by this import; the importer leaves it alone. Delete or rename it, or rename the import.", imp.Namespace, name)}, nil
	} else if err != nil {
		return nil, err
	}
	rem, err := r.clusters.get(ctx, imp.Spec.ClusterName)
	if unknown := (*clusterUnknownError)(nil); errors.As(err, &unknown) {
		importing := r.clusters.importingCluster(ctx)
		return &outcome{imp: imp, reason: v1alpha1.ReasonClusterUnknown,
			message: fmt.Sprintf("%v. Run `%s` (or `%s`).", unknown, grant.FederateCommand(importing, imp.Spec.ClusterName), grant.BootstrapCommand(importing, imp.Spec.ClusterName))}, nil
	} else if err != nil {
		return nil, err
	}
	// Where B is, and whom to act as: written whatever the checks say, so that pods start and
	// get B's own answer, which the status explains.
	if err := r.writeConfigMap(ctx, imp, existing, rem); err != nil {
		return nil, err
	}
	reason, message := r.checkFederation(ctx, imp, rem)
	// Every reconcile checks the chain afresh: a refresh request (kubectl mcsa rotate, import
	// --wait) is acted upon.
	out := &outcome{imp: imp, reason: reason, message: message, attempted: true}
	if reason == v1alpha1.ReasonFederated {
		out.requeueAfter = r.opts.FederationRecheck
	} else {
		refreshFailures.WithLabelValues(imp.Spec.ClusterName, reason).Inc()
		out.retry = true
	}
	return out, nil
}

// checkFederation follows the chain of a federated import and names its first broken link.
func (r *Reconciler) checkFederation(ctx context.Context, imp *v1alpha1.ServiceAccountImport, rem *remote) (string, string) {
	b := imp.Spec.ClusterName
	importing := rem.importingCluster
	if importing == "" {
		importing = r.clusters.importingCluster(ctx)
	}
	if rem.federated == nil {
		return v1alpha1.ReasonIssuerNotTrusted, "The importer does not know its own service account (--service-account), so it cannot check federation."
	}
	federate := grant.FederateCommand(importing, b)
	user, err := r.canary(ctx, rem, r.opts.Clock.Now())
	switch {
	case apierrors.IsUnauthorized(err):
		if served, derr := r.discoveryServed(ctx); derr == nil && !served {
			return v1alpha1.ReasonDiscoveryNotServed, fmt.Sprintf(
				"This cluster does not serve its service-account issuer discovery to anonymous callers, so cluster %s cannot fetch its keys. Run `%s`.", b, federate)
		}
		return v1alpha1.ReasonIssuerNotTrusted, fmt.Sprintf(
			"Cluster %s refuses this cluster's service-account tokens for audience %s: it has no JWT authenticator for this cluster's issuer, or has not loaded it yet (B re-reads its authentication configuration within about a minute). Run `%s`.",
			b, v1alpha1.FederatedAudience(b), federate)
	case err != nil:
		return v1alpha1.ReasonClusterUnreachable, fmt.Sprintf("Cannot reach cluster %s: %v.", b, err)
	}
	want := grant.FederatedUser(importing, r.opts.Namespace, r.opts.ServiceAccount)
	if user != want {
		return v1alpha1.ReasonIssuerNotTrusted, fmt.Sprintf(
			"Cluster %s maps the importer to user %q, not %q: its authenticator for this cluster's issuer is not the one federate writes. Run `%s`.", b, user, want, federate)
	}
	if v1alpha1.IsClusterCredential(imp, r.opts.Namespace) {
		return v1alpha1.ReasonFederated, fmt.Sprintf(
			"Cluster credential for %s (federated): %s accepts this cluster's service-account tokens (the importer is %q there); no token of %s is stored here.", b, b, user, b)
	}
	sa := imp.Spec.Namespace + "/" + imp.Spec.Name
	allow := grant.AllowFederatedCommand(importing, b, imp.Spec.Namespace, imp.Spec.Name, imp.Namespace)
	allowed, err := r.impersonationAllowed(ctx, rem, importing, imp)
	switch {
	case apierrors.IsForbidden(err):
		return v1alpha1.ReasonImpersonationNotAllowed, fmt.Sprintf(
			"Cluster %s does not let the importer check federated grants in namespace %s: nothing is granted there to cluster %s. Run `%s`.", b, imp.Spec.Namespace, importing, allow)
	case err != nil:
		return v1alpha1.ReasonClusterUnreachable, fmt.Sprintf("Cannot reach cluster %s: %v.", b, err)
	case !allowed:
		return v1alpha1.ReasonImpersonationNotAllowed, fmt.Sprintf(
			"Cluster %s does not let service accounts of namespace %s of cluster %s act as service account %s. Run `%s`.", b, imp.Namespace, importing, sa, allow)
	}
	return v1alpha1.ReasonFederated, fmt.Sprintf(
		"Pods of namespace %s present their own service-account token (audience %s, %d s, rotated by the kubelet) and act as service account %s of cluster %s, as its RBAC allows; no token of %s is stored here.",
		imp.Namespace, v1alpha1.FederatedAudience(b), v1alpha1.FederatedExpirationSeconds(imp), sa, b, b)
}

// impersonationAllowed asks B whether the service accounts of the import's namespace of A may
// act as the import's service account: with constrained impersonation, else the legacy verb.
func (r *Reconciler) impersonationAllowed(ctx context.Context, rem *remote, importing string, imp *v1alpha1.ServiceAccountImport) (bool, error) {
	ns, name := imp.Spec.Namespace, imp.Spec.Name
	for _, attrs := range []authorizationv1.ResourceAttributes{
		{Namespace: ns, Verb: grant.ImpersonateServiceAccountVerb, Group: grant.ImpersonationGroup, Resource: "serviceaccounts", Name: name},
		{Namespace: ns, Verb: "impersonate", Resource: "serviceaccounts", Name: name},
	} {
		review, err := rem.federated.AuthorizationV1().LocalSubjectAccessReviews(ns).Create(ctx, &authorizationv1.LocalSubjectAccessReview{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns},
			Spec: authorizationv1.SubjectAccessReviewSpec{
				Groups:             []string{grant.FederatedGroup(importing, ""), grant.FederatedGroup(importing, imp.Namespace)},
				ResourceAttributes: &attrs,
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		if review.Status.Allowed {
			return true, nil
		}
	}
	return false, nil
}

// discoveryServed tells whether this cluster serves its issuer discovery to anonymous callers,
// as B fetches it.
func (r *Reconciler) discoveryServed(ctx context.Context) (bool, error) {
	if r.anonymous == nil {
		return false, errors.New("no client for this cluster")
	}
	var code int
	err := r.anonymous.Get().AbsPath("/.well-known/openid-configuration").Do(ctx).StatusCode(&code).Error()
	switch code {
	case http.StatusOK:
		return true, nil
	case http.StatusForbidden, http.StatusUnauthorized:
		return false, nil
	}
	return false, err
}

// ownedConfigMap returns the import's ConfigMap from the API server (it is small), nil if
// there is none, or errSecretConflict if one of that name belongs to something else.
func (r *Reconciler) ownedConfigMap(ctx context.Context, imp *v1alpha1.ServiceAccountImport) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	if err := r.apiReader.Get(ctx, client.ObjectKey{Namespace: imp.Namespace, Name: v1alpha1.FederatedConfigMapName(imp.Name)}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	if !credential.OwnedBy(cm, imp) {
		return nil, errSecretConflict
	}
	return cm, nil
}

// writeConfigMap creates the import's ConfigMap or updates what differs, leaving others' labels
// and annotations.
func (r *Reconciler) writeConfigMap(ctx context.Context, imp *v1alpha1.ServiceAccountImport, existing *corev1.ConfigMap, rem *remote) error {
	desired, err := credential.NewConfigMap(imp, credential.Federated{ClusterName: imp.Spec.ClusterName, Server: rem.server, CAData: r.caBundle(rem),
		Namespace: imp.Spec.Namespace, ServiceAccount: imp.Spec.Name})
	if err != nil {
		return err
	}
	if existing == nil {
		return r.client.Create(ctx, desired)
	}
	updated := existing.DeepCopy()
	updated.Data = desired.Data
	updated.BinaryData = nil
	if updated.Labels == nil {
		updated.Labels = map[string]string{}
	}
	updated.Labels[v1alpha1.ImportNameKey] = v1alpha1.SecretLabelValue(imp.Name)
	if equality.Semantic.DeepEqual(existing, updated) {
		return nil
	}
	return r.client.Update(ctx, updated)
}

// newConfigMapMetadata is a ConfigMap's metadata, to be read from the cache (which holds nothing
// else of ConfigMaps) or from the API server.
func newConfigMapMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	return m
}

// anonymousClient is a client of this cluster without credentials, as B's authenticator
// fetches this cluster's discovery.
func anonymousClient(cfg *rest.Config) (rest.Interface, error) {
	anon := rest.AnonymousClientConfig(cfg)
	anon.GroupVersion = &corev1.SchemeGroupVersion
	anon.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	return rest.UnversionedRESTClientFor(anon)
}
