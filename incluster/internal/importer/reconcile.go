package importer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
)

// Event reasons besides the Ready condition's failure reasons, which failure events use.
const (
	EventTokenIssued    = "TokenIssued"
	EventTokenRefreshed = "TokenRefreshed"
)

// outcome is what a reconcile found, for the import's status.
type outcome struct {
	imp     *v1alpha1.ServiceAccountImport
	reason  string
	message string
	// retry asks for a retry with backoff: the failure may resolve itself (a remote outage, a
	// grant or service account created later in the remote cluster).
	retry        bool
	requeueAfter time.Duration
	// secret is the import's own secret (its metadata at least), if any, and state the token it
	// holds.
	secret   metav1.Object
	state    tokenState
	hasState bool
	// refreshed is set when a token was minted just now; attempted when minting was tried, so
	// that a refresh request is recorded as acted upon even when it failed.
	refreshed, attempted bool
}

// Reconcile keeps an import's secret holding a current token and reports in its status.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	start := r.opts.Clock.Now()
	imp := &v1alpha1.ServiceAccountImport{}
	if err := r.client.Get(ctx, req.NamespacedName, imp); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if !imp.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil // the garbage collector deletes the secret
	}
	ctx = logf.IntoContext(ctx, logf.FromContext(ctx).WithValues("cluster", imp.Spec.ClusterName))

	out, err := r.reconcile(ctx, imp)
	if err != nil || out == nil {
		return reconcile.Result{}, err
	}
	reportCtx := ctx
	if out.refreshed {
		// A token was minted and stored: record its schedule even if the importer is stopping,
		// or the restart would find the previous schedule and mint again.
		var cancel context.CancelFunc
		reportCtx, cancel = persisting(ctx)
		defer cancel()
	}
	if err := r.report(reportCtx, out); err != nil {
		return reconcile.Result{}, err
	}
	reconcileDuration.WithLabelValues(out.reason).Observe(r.opts.Clock.Since(start).Seconds())
	if out.retry {
		return reconcile.Result{}, errors.New(out.message)
	}
	return reconcile.Result{RequeueAfter: out.requeueAfter}, nil
}

func (r *Reconciler) forget(req reconcile.Request) {
	tokenExpiration.DeleteLabelValues(req.Namespace, req.Name)
	r.verified.forget(req.NamespacedName)
	r.statusWrites.forget(req.NamespacedName)
	if req.Namespace == r.opts.Namespace {
		r.clusters.forget(req.Name)
	}
}

// reconcile decides whether the import needs a new token and gets it. A nil outcome means there
// is nothing to report (the import is gone).
func (r *Reconciler) reconcile(ctx context.Context, imp *v1alpha1.ServiceAccountImport) (*outcome, error) {
	if msg := r.validate(imp); msg != "" {
		return &outcome{imp: imp, reason: v1alpha1.ReasonInvalidSpec, message: msg}, nil
	}
	if v1alpha1.IsFederated(imp) {
		return r.reconcileFederated(ctx, imp)
	}
	secret, err := r.ownedSecret(ctx, r.client, imp)
	if errors.Is(err, errSecretConflict) {
		return r.conflict(imp), nil
	} else if err != nil {
		return nil, err
	}
	rem, err := r.clusters.get(ctx, imp.Spec.ClusterName)
	if unknown := (*clusterUnknownError)(nil); errors.As(err, &unknown) {
		// No retry: the credential's secret is watched, its arrival requeues this import.
		st, ok := readTokenState(imp, secret != nil)
		return &outcome{imp: imp, reason: v1alpha1.ReasonClusterUnknown, secret: secretOrNil(secret), state: st, hasState: ok,
			message: fmt.Sprintf("%v. Run `%s`.", unknown, grant.BootstrapCommand(r.clusters.importingCluster(ctx), imp.Spec.ClusterName))}, nil
	} else if err != nil {
		return nil, err
	}
	if rem.client == nil {
		// Federated only: no credential to mint tokens of B with.
		return &outcome{imp: imp, reason: v1alpha1.ReasonClusterUnknown, secret: secretOrNil(secret), retry: true,
			message: fmt.Sprintf("Cluster %s is federated, not bootstrapped: this cluster holds no credential to mint its tokens with. Create the import with `mode: Federated` (kubectl mcsa import --federated), or run `%s`.",
				imp.Spec.ClusterName, grant.BootstrapCommand(r.clusters.importingCluster(ctx), imp.Spec.ClusterName))}, nil
	}

	now := r.opts.Clock.Now()
	cred := v1alpha1.IsClusterCredential(imp, r.opts.Namespace)
	if cred {
		// B's CA bundle, read with the credential once per recheck: when it changed, the
		// credential's secret is rewritten below (keep) with the merged bundle, which rebuilds the
		// client and, through the watch on that secret, reconciles every import of B.
		r.learnCA(ctx, rem, now)
	}
	st, hasState := readTokenState(imp, secret != nil)
	trigger := refreshReason(imp, st, hasState, now)
	// About to mint a token: decide again on what the API server holds where the cache may not
	// tell. It may lag behind our last write (of the status, which holds the schedule, or of
	// the secret), which must not trigger a second refresh; and it holds only labelled secrets,
	// so a secret of that name without the label, someone else's, is seen only by the API
	// server. The reads and the grant's in B (which the refresh needs unless the API server
	// says otherwise) are made at once.
	if readImport := !r.cacheCurrent(imp, secret); trigger != "" && (readImport || secret == nil) {
		var (
			fresh             = &v1alpha1.ServiceAccountImport{}
			freshSecret       *metav1.PartialObjectMetadata
			impErr, secretErr error
			wg                sync.WaitGroup
		)
		if readImport {
			wg.Go(func() { impErr = r.apiReader.Get(ctx, client.ObjectKeyFromObject(imp), fresh) })
		}
		wg.Go(func() { freshSecret, secretErr = r.ownedSecret(ctx, r.apiReader, imp) })
		wg.Go(func() { r.readGrant(ctx, imp, rem, now) }) // only fills rem.grants, for refresh
		wg.Wait()
		if readImport {
			if impErr != nil {
				if apierrors.IsNotFound(impErr) {
					return nil, nil
				}
				return nil, impErr
			}
			if !fresh.DeletionTimestamp.IsZero() || fresh.Generation != imp.Generation {
				return nil, nil // a newer event follows
			}
			imp = fresh
		}
		secret = freshSecret
		if errors.Is(secretErr, errSecretConflict) {
			return r.conflict(imp), nil
		} else if secretErr != nil {
			return nil, secretErr
		}
		st, hasState = readTokenState(imp, secret != nil)
		trigger = refreshReason(imp, st, hasState, now)
	}
	var out *outcome
	if trigger == "" {
		out, err = r.keep(ctx, imp, secret, st, rem, now)
	} else {
		out, err = r.refresh(ctx, imp, metadataSecret(secret), st, hasState, rem, trigger, now)
	}
	if cred && rem.published != nil && out != nil && out.reason == v1alpha1.ReasonTokenIssued &&
		(out.requeueAfter <= 0 || out.requeueAfter > r.opts.CABundleRecheck) {
		// The credential comes back every recheck to read B's CA bundle again (learnCA): nothing
		// else would tell the importer that B publishes a new CA.
		out.requeueAfter = r.opts.CABundleRecheck
	}
	return out, err
}

// persistTimeout bounds the writes that record a minted token when the importer is stopping.
const persistTimeout = 10 * time.Second

// persisting is ctx without its cancellation (its values kept), bounded by persistTimeout: for
// the writes that must follow a TokenRequest.
func persisting(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), persistTimeout)
}

// secretOrNil keeps a nil *metav1.PartialObjectMetadata from becoming a non-nil interface.
func secretOrNil(s *metav1.PartialObjectMetadata) metav1.Object {
	if s == nil {
		return nil
	}
	return s
}

// metadataSecret is a secret of which only the metadata is known, or nil: what an update
// starts from when it replaces all the data.
func metadataSecret(s *metav1.PartialObjectMetadata) *corev1.Secret {
	if s == nil {
		return nil
	}
	return &corev1.Secret{ObjectMeta: *s.ObjectMeta.DeepCopy()}
}

// validate returns why the spec cannot be honored, or "".
func (r *Reconciler) validate(imp *v1alpha1.ServiceAccountImport) string {
	// Service accounts of that namespace are importer identities: importing one would hand its
	// grants to whoever may create imports, bypassing allowed-importers restrictions.
	if imp.Spec.Namespace == grant.Namespace && !v1alpha1.IsClusterCredential(imp, r.opts.Namespace) {
		return fmt.Sprintf("Service accounts of namespace %s of cluster %s are importer identities; only the cluster credential (ServiceAccountImport %s/%s) may import them.",
			grant.Namespace, imp.Spec.ClusterName, r.opts.Namespace, imp.Spec.ClusterName)
	}
	return ""
}

func (r *Reconciler) conflict(imp *v1alpha1.ServiceAccountImport) *outcome {
	name := v1alpha1.SecretName(imp.Name)
	return &outcome{imp: imp, reason: v1alpha1.ReasonSecretConflict, requeueAfter: r.opts.MaxRetryDelay,
		message: fmt.Sprintf("Secret %s/%s exists and is not controlled by this import; the importer leaves it alone. Delete or rename it, or rename the import.", imp.Namespace, name)}
}

// ownedSecret returns the metadata of the import's secret (read from the cache, which holds
// nothing else, or from the API server), nil if there is none, or errSecretConflict if a secret of
// that name belongs to something else.
func (r *Reconciler) ownedSecret(ctx context.Context, reader client.Reader, imp *v1alpha1.ServiceAccountImport) (*metav1.PartialObjectMetadata, error) {
	s := newSecretMetadata()
	if err := reader.Get(ctx, client.ObjectKey{Namespace: imp.Namespace, Name: v1alpha1.SecretName(imp.Name)}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	if !credential.OwnedBy(s, imp) {
		return nil, errSecretConflict
	}
	return s, nil
}

// cacheCurrent tells whether the cached import may decide that a token is minted, without
// reading it again from the API server: the cache holds every write this process made to it and
// its secret (the import is at the version its last status write returned, the secret at the
// version this process last wrote or read), or the import is new to this process, never reported
// on and without a secret. A write of an earlier process is then in the cache, listed after that
// process stopped, but for a leader that stopped just now, whose secret, if it wrote one, the
// importer reads before minting (the cache shows none) or fails to create (AlreadyExists).
func (r *Reconciler) cacheCurrent(imp *v1alpha1.ServiceAccountImport, secret *metav1.PartialObjectMetadata) bool {
	key := client.ObjectKeyFromObject(imp)
	secretVersion, knownSecret := r.verified.version(key, imp.UID)
	importVersion, wrote := r.statusWrites.get(key, imp.UID)
	if !wrote {
		return !knownSecret && secret == nil && imp.Status.ObservedGeneration == 0 && len(imp.Status.Conditions) == 0
	}
	if imp.ResourceVersion != importVersion {
		return false
	}
	if secret == nil {
		return !knownSecret
	}
	return knownSecret && secret.ResourceVersion == secretVersion
}

// keep keeps the current token, refreshing the rest of the secret (the cluster's server or CA
// may have changed, or someone else the secret), and schedules the next refresh.
//
// The cache holds the secret's metadata only. The secret's data is read from the API server, and
// rewritten where it differs, only when the secret may not be what the importer wrote: it changed
// since this process wrote or read it, or, for a secret this process has not seen yet (after a
// restart), its digest annotation does not match what the importer would write now.
func (r *Reconciler) keep(ctx context.Context, imp *v1alpha1.ServiceAccountImport, secret *metav1.PartialObjectMetadata, st tokenState, rem *remote, now time.Time) (*outcome, error) {
	out := &outcome{imp: imp, reason: v1alpha1.ReasonTokenIssued, message: r.readyMessage(imp, st),
		secret: secret, state: st, hasState: true, requeueAfter: refreshAt(st, string(imp.UID)).Sub(now)}
	want, err := r.desiredSecret(imp, rem, "")
	if err != nil {
		return nil, err
	}
	key := client.ObjectKeyFromObject(imp)
	if r.verified.current(key, imp.UID, secret, want.Annotations[v1alpha1.SecretDigestAnnotation]) {
		return out, nil
	}
	full := &corev1.Secret{}
	if err := r.apiReader.Get(ctx, client.ObjectKeyFromObject(secret), full); err != nil {
		return nil, err // gone meanwhile: the retry finds no secret and issues a token
	}
	if !credential.OwnedBy(full, imp) {
		return r.conflict(imp), nil
	}
	token := string(full.Data[v1alpha1.SecretKeyToken])
	if token == "" {
		// Emptied by someone else: the schedule describes a token that is no longer there.
		return r.refresh(ctx, imp, full, st, false, rem, refreshNoSecret, now)
	}
	written, err := r.writeSecret(ctx, imp, full, r.data(imp, rem, token))
	if err != nil {
		return nil, err
	}
	out.secret = written
	return out, nil
}

// refresh mints a token and stores it. The previous token stays valid until it expires, so
// clients have time to read the new one.
func (r *Reconciler) refresh(ctx context.Context, imp *v1alpha1.ServiceAccountImport, secret *corev1.Secret, st tokenState, hasState bool, rem *remote, trigger string, now time.Time) (*outcome, error) {
	log := logf.FromContext(ctx)
	failed := func(reason, message string) (*outcome, error) {
		if ctx.Err() != nil {
			return nil, ctx.Err() // shutting down: the remote cluster is not at fault
		}
		refreshFailures.WithLabelValues(imp.Spec.ClusterName, reason).Inc()
		// Whatever failed, the retry reads the grant in B again rather than what led here.
		rem.grants.forget(grantReadKeys(imp)...)
		if refused(reason) && !v1alpha1.IsClusterCredential(imp, r.opts.Namespace) && secret != nil {
			// B refused: the token it issued before must not stay mounted as if it were current.
			cleared, err := r.clearToken(ctx, imp, secret)
			if err != nil {
				return nil, err
			}
			secret, hasState = cleared, false
			message += fmt.Sprintf(" The importer removed the token from secret %s/%s.", imp.Namespace, secret.Name)
		}
		if hasState && now.Before(st.expires) {
			message += fmt.Sprintf(" The current token stays valid until %s.", st.expires.UTC().Format(time.RFC3339))
		}
		out := &outcome{imp: imp, reason: reason, message: message, retry: true, state: st, hasState: hasState, attempted: true}
		if secret != nil {
			out.secret = secret
		}
		return out, nil
	}
	sa := client.ObjectKey{Namespace: imp.Spec.Namespace, Name: imp.Spec.Name}
	importing := rem.importingCluster
	if importing == "" {
		importing = r.clusters.importingCluster(ctx)
	}

	g := r.readGrant(ctx, imp, rem, now)
	if g.saErr != nil {
		return failed(r.remoteFailure(imp, importing, g.saErr))
	}
	if allowed, err := grant.Allowed(g.saAnnotations, rem.importingCluster, imp.Namespace); !allowed {
		why := fmt.Sprintf("its annotation %s is %q", v1alpha1.AllowedImportersAnnotation, g.saAnnotations[v1alpha1.AllowedImportersAnnotation])
		if err != nil {
			why = err.Error()
		} else if rem.importingCluster == "" {
			why += " and this cluster's name is unknown (set --cluster-name)"
		}
		return failed(v1alpha1.ReasonNamespaceNotAllowed, fmt.Sprintf(
			"Service account %s of cluster %s may not be imported into namespace %s of cluster %s: %s. To allow it, run `%s`.",
			sa, imp.Spec.ClusterName, imp.Namespace, importing, why,
			grant.AllowIntoNamespacesCommand(importing, imp.Spec.ClusterName, sa.Namespace, sa.Name, imp.Namespace)))
	}
	if rem.importingCluster == "" {
		// Tokens are bound to the anchor of this cluster's grant, named after this cluster.
		return failed(v1alpha1.ReasonGrantAnchorMissing, fmt.Sprintf(
			"This cluster's name in cluster %s is unknown (set --cluster-name): the importer cannot name the anchor its tokens are bound to.", imp.Spec.ClusterName))
	}
	if g.policyErr != nil {
		return failed(r.remoteFailure(imp, importing, g.policyErr))
	}
	policy := g.policy
	if !policy.AllowsAudiences(imp.Spec.Audiences) {
		return failed(v1alpha1.ReasonAudienceNotAllowed, fmt.Sprintf(
			"The grant of service account %s of cluster %s to cluster %s allows tokens for %s only, not for audiences %s. Remove the audiences from the import, or have them allowed: `%s --audiences %s`.",
			sa, imp.Spec.ClusterName, importing, allowedAudiences(policy), strings.Join(imp.Spec.Audiences, ","),
			grant.AllowCommand(importing, imp.Spec.ClusterName, sa.Namespace, sa.Name), strings.Join(imp.Spec.Audiences, ",")))
	}

	refreshAttempts.WithLabelValues(imp.Spec.ClusterName, trigger).Inc()
	issued := time.Unix(now.Unix(), 0) // the status records seconds; keep the schedule identical after a restart
	seconds := min(r.askedSeconds(imp), policy.MaxSeconds())
	// Never an unbound token: deleting the anchor in B must revoke every token issued under the grant.
	tr, err := rem.client.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: imp.Spec.Audiences, ExpirationSeconds: ptr.To(seconds),
			BoundObjectRef: grant.BoundObjectRef(rem.importingCluster, sa.Name)},
	}, metav1.CreateOptions{})
	if err != nil {
		return failed(r.remoteFailure(imp, importing, err))
	}
	next := tokenState{issued: issued, expires: tr.Status.ExpirationTimestamp.Time, generation: imp.Generation}
	// The token exists now: store it even if the importer is stopping (Reconcile then records
	// its schedule the same way), so that a restart does not mint it again. Only a crash between
	// the two writes costs one more refresh.
	persistCtx, cancel := persisting(ctx)
	defer cancel()
	written, err := r.writeSecret(persistCtx, imp, secret, r.data(imp, rem, tr.Status.Token))
	if err != nil {
		// The token is lost, not leaked: it was never stored. The retry mints another.
		return nil, err
	}
	at := refreshAt(next, string(imp.UID))
	log.Info("Token refreshed", "trigger", trigger, "expires", next.expires, "nextRefresh", at)
	// Events mark transitions: a first token (or one issued again after it was lost or
	// removed), and a refresh that is not routine (a new spec, a request, the end of a failure).
	// A refresh on schedule says nothing the status does not, and was an Event written in A
	// per import and refresh period.
	switch {
	case !hasState:
		r.events.Eventf(imp, written, corev1.EventTypeNormal, EventTokenIssued, "IssueToken",
			"Issued a token of %s in cluster %s; it expires at %s", sa, imp.Spec.ClusterName, next.expires.UTC().Format(time.RFC3339))
	case trigger != refreshScheduled:
		r.events.Eventf(imp, written, corev1.EventTypeNormal, EventTokenRefreshed, "RefreshToken",
			"Refreshed the token (%s); it expires at %s", trigger, next.expires.UTC().Format(time.RFC3339))
	}
	return &outcome{imp: imp, reason: v1alpha1.ReasonTokenIssued, message: r.readyMessage(imp, next),
		secret: written, state: next, hasState: true, refreshed: true, requeueAfter: at.Sub(now)}, nil
}

// grantView is what B says of an import's grant before a TokenRequest.
type grantView struct {
	// saAnnotations holds the service account's allowed-importers annotation, if any.
	saAnnotations map[string]string
	saErr         error
	policy        grant.Policy
	policyErr     error
}

// grantReadKeys are the reads of imp's grant in B.
func grantReadKeys(imp *v1alpha1.ServiceAccountImport) []grantReadKey {
	return []grantReadKey{{readServiceAccount, imp.Spec.Namespace, imp.Spec.Name}, {readPolicies, imp.Spec.Namespace, grant.PoliciesName}}
}

// readGrant reads the import's grant in B: its service account (for the allowed-importers
// annotation) and the token policy, both at once, each from rem.grants when read in the last
// grantReadTTL. A credential renews itself and may do nothing else, not even read its service
// account; its policy is fixed. Without this cluster's name no policy can be named.
func (r *Reconciler) readGrant(ctx context.Context, imp *v1alpha1.ServiceAccountImport, rem *remote, now time.Time) grantView {
	if v1alpha1.IsClusterCredential(imp, r.opts.Namespace) {
		return grantView{policy: grant.CredentialPolicy()}
	}
	keys := grantReadKeys(imp)
	var g grantView
	var wg sync.WaitGroup
	wg.Go(func() {
		v, err := rem.grants.get(keys[0], now, func() (any, error) {
			sa, err := rem.client.CoreV1().ServiceAccounts(imp.Spec.Namespace).Get(ctx, imp.Spec.Name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			if v, ok := sa.Annotations[v1alpha1.AllowedImportersAnnotation]; ok {
				return map[string]string{v1alpha1.AllowedImportersAnnotation: v}, nil
			}
			return map[string]string(nil), nil
		})
		if g.saErr = err; err == nil {
			g.saAnnotations = v.(map[string]string)
		}
	})
	if rem.importingCluster != "" {
		wg.Go(func() {
			v, err := rem.grants.get(keys[1], now, func() (any, error) {
				cm, err := rem.client.CoreV1().ConfigMaps(imp.Spec.Namespace).Get(ctx, grant.PoliciesName, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return nil, grant.ErrNoPolicy
				} else if err != nil {
					return nil, err
				}
				return cm.Data, nil
			})
			if g.policyErr = err; err == nil {
				g.policy, g.policyErr = grant.LookupPolicy(v.(map[string]string), rem.importingCluster, imp.Spec.Name)
			}
		})
	}
	wg.Wait()
	return g
}

func allowedAudiences(p grant.Policy) string {
	if len(p.Audiences) == 0 {
		return "the API server of that cluster"
	}
	return "the API server of that cluster and " + strings.Join(p.Audiences, ",")
}

// remoteFailure turns an error of the remote cluster into a Ready reason and a message naming
// the remedy.
func (r *Reconciler) remoteFailure(imp *v1alpha1.ServiceAccountImport, importing string, err error) (string, string) {
	sa := imp.Spec.Namespace + "/" + imp.Spec.Name
	b := imp.Spec.ClusterName
	bootstrap := grant.BootstrapCommand(importing, b)
	cred := v1alpha1.IsClusterCredential(imp, r.opts.Namespace)
	var policyErr *grant.PolicyError
	switch {
	case errors.Is(err, grant.ErrNoPolicy), errors.As(err, &policyErr):
		return v1alpha1.ReasonGrantAnchorMissing, fmt.Sprintf("Cluster %s has no valid token policy for cluster %s's grant of service account %s (%v; the grant predates token policies, or was disallowed): the importer requests no token outside a grant. To write it, run `%s`.",
			b, importing, sa, err, grant.AllowCommand(importing, b, imp.Spec.Namespace, imp.Spec.Name))
	case anchorMissing(err) && cred:
		return v1alpha1.ReasonGrantAnchorMissing, fmt.Sprintf("The anchor of the importer's own tokens, secret %s/%s in cluster %s, does not exist (deleted, or bootstrap predates anchors); the importer requests no unbound token: run `%s`.",
			imp.Spec.Namespace, grant.AnchorName(importing, imp.Spec.Name), b, bootstrap)
	case anchorMissing(err):
		return v1alpha1.ReasonGrantAnchorMissing, fmt.Sprintf("The anchor of cluster %s's tokens of service account %s, secret %s/%s in cluster %s, does not exist (the grant was disallowed or is being revoked, or predates anchors); the importer requests no unbound token. To re-create it, run `%s`.",
			importing, sa, imp.Spec.Namespace, grant.AnchorName(importing, imp.Spec.Name), b, grant.AllowCommand(importing, b, imp.Spec.Namespace, imp.Spec.Name))
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), grant.TokenPolicyName):
		// B's admission, enforcing the grant's token policy: the importer asked for what the
		// policy it read allows, so that policy changed meanwhile, or the request is malformed.
		return v1alpha1.ReasonForbidden, fmt.Sprintf("Cluster %s refused the token request by its grant's token policy (%v). If the grant was just changed, the next retry follows it; otherwise re-write the grant: run `%s`.",
			b, err, grant.AllowCommand(importing, b, imp.Spec.Namespace, imp.Spec.Name))
	case apierrors.IsForbidden(err) && cred:
		return v1alpha1.ReasonForbidden, fmt.Sprintf("Cluster %s forbids the importer to renew its own token (service account %s): run `%s`.", b, sa, bootstrap)
	case apierrors.IsForbidden(err):
		return v1alpha1.ReasonForbidden, fmt.Sprintf("Cluster %s does not allow cluster %s to import service account %s: run `%s` (or, for every service account of the namespace, `%s`).",
			b, importing, sa, grant.AllowCommand(importing, b, imp.Spec.Namespace, imp.Spec.Name), grant.AllowNamespaceCommand(importing, b, imp.Spec.Namespace))
	case apierrors.IsNotFound(err) && cred:
		return v1alpha1.ReasonServiceAccountNotFound, fmt.Sprintf("The importer's identity, service account %s, does not exist in cluster %s: run `%s`.", sa, b, bootstrap)
	case apierrors.IsNotFound(err):
		return v1alpha1.ReasonServiceAccountNotFound, fmt.Sprintf("Service account %s not found in cluster %s; the import becomes ready once it exists there.", sa, b)
	case apierrors.IsUnauthorized(err):
		return v1alpha1.ReasonClusterUnreachable, fmt.Sprintf("Cluster %s rejected the importer's credential (expired or revoked): run `%s`.", b, bootstrap)
	default:
		return v1alpha1.ReasonClusterUnreachable, fmt.Sprintf("Cannot reach cluster %s: %v.", b, err)
	}
}

// anchorMissing tells whether a TokenRequest failed because the Secret its token was to be bound
// to does not exist (rather than the service account).
func anchorMissing(err error) bool {
	var status apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &status) {
		return false
	}
	d := status.Status().Details
	return d != nil && d.Kind == "secrets"
}

// refused tells whether a failure reason is B refusing the import (as opposed to B being
// unreachable, or the service account not existing yet): the token issued before is then
// removed from the import's secret at once.
func refused(reason string) bool {
	switch reason {
	case v1alpha1.ReasonForbidden, v1alpha1.ReasonNamespaceNotAllowed, v1alpha1.ReasonGrantAnchorMissing, v1alpha1.ReasonAudienceNotAllowed:
		return true
	}
	return false
}

// clearToken removes the token from the import's secret, keeping the secret (and so the
// webhook's checks and the pods' mounts) and its other keys: the client library and anything
// reading the token file then fail clearly ("file token is missing") instead of sending a
// token B refuses or may revoke. It returns the secret as written.
func (r *Reconciler) clearToken(ctx context.Context, imp *v1alpha1.ServiceAccountImport, secret *corev1.Secret) (*corev1.Secret, error) {
	full := &corev1.Secret{}
	if err := r.apiReader.Get(ctx, client.ObjectKeyFromObject(secret), full); err != nil {
		if apierrors.IsNotFound(err) {
			return secret, nil
		}
		return nil, err
	}
	if !credential.OwnedBy(full, imp) {
		return secret, nil
	}
	r.verified.forget(client.ObjectKeyFromObject(imp))
	if _, ok := full.Data[v1alpha1.SecretKeyToken]; !ok {
		return full, nil
	}
	delete(full.Data, v1alpha1.SecretKeyToken)
	if err := r.client.Update(ctx, full); err != nil {
		return nil, err
	}
	logf.FromContext(ctx).Info("Token removed from the import's secret", "secret", full.Name)
	return full, nil
}

// data is what the importer writes in an import's secret. Its CA is caBundle's: when B publishes
// a new CA, the secret's digest (secretDigest covers ca.crt and config) no longer matches, and
// keep rewrites the secret.
func (r *Reconciler) data(imp *v1alpha1.ServiceAccountImport, rem *remote, token string) credential.Data {
	return credential.Data{ClusterName: imp.Spec.ClusterName, Server: rem.server, CAData: r.caBundle(rem), Namespace: imp.Spec.Namespace, Token: token}
}

func (r *Reconciler) readyMessage(imp *v1alpha1.ServiceAccountImport, st tokenState) string {
	exp := st.expires.UTC().Format(time.RFC3339)
	if v1alpha1.IsClusterCredential(imp, r.opts.Namespace) {
		return fmt.Sprintf("Cluster credential for %s: token of the importer's identity %s/%s, renewed with itself, expires at %s.", imp.Spec.ClusterName, imp.Spec.Namespace, imp.Spec.Name, exp)
	}
	msg := fmt.Sprintf("Token of service account %s/%s of cluster %s expires at %s.", imp.Spec.Namespace, imp.Spec.Name, imp.Spec.ClusterName, exp)
	// Derived from the token itself, so that the message is the same whether the token was
	// minted now or found: capped by the grant's policy, or by B's API server.
	if lifetime, asked := st.expires.Sub(st.issued), time.Duration(r.askedSeconds(imp))*time.Second; asked-lifetime > cappedSlack {
		msg += fmt.Sprintf(" Its lifetime is capped at %s, less than the %s the import asks for: the grant in cluster %s (or its API server) allows no more.",
			lifetime.Round(time.Second), asked, imp.Spec.ClusterName)
	}
	return msg
}

// cappedSlack is how much shorter than asked a token may be without being reported as capped:
// the API server counts its lifetime from its own clock, the status records whole seconds.
const cappedSlack = time.Minute

// askedSeconds is the lifetime the import asks for.
func (r *Reconciler) askedSeconds(imp *v1alpha1.ServiceAccountImport) int64 {
	if imp.Spec.ExpirationSeconds != nil {
		return *imp.Spec.ExpirationSeconds
	}
	return int64(r.opts.DefaultTokenLifetime / time.Second)
}

// desiredSecret is the import's secret as the importer writes it, with its digest annotation;
// without a token (""), only for its digest.
func (r *Reconciler) desiredSecret(imp *v1alpha1.ServiceAccountImport, rem *remote, token string) (*corev1.Secret, error) {
	d := r.data(imp, rem, token)
	if token == "" {
		d.Token = "-" // not part of the digest; credential.Data requires one
	}
	desired, err := credential.NewSecret(imp, d)
	if err != nil {
		return nil, err
	}
	desired.Annotations = map[string]string{v1alpha1.SecretDigestAnnotation: secretDigest(desired)}
	return desired, nil
}

// secretDigest is a digest of what the importer writes in a secret besides the token.
func secretDigest(s *corev1.Secret) string {
	h := sha256.New()
	fmt.Fprintf(h, "type=%q label=%q", s.Type, s.Labels[v1alpha1.ImportNameKey])
	keys := slices.Sorted(maps.Keys(s.Data))
	for _, k := range keys {
		if k != v1alpha1.SecretKeyToken {
			fmt.Fprintf(h, " %q=%q", k, s.Data[k])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// legacyAnnotations are the schedule annotations of earlier importers: never read, removed on
// every write so that nobody mistakes them for the schedule.
var legacyAnnotations = []string{v1alpha1.TokenIssuedAtAnnotation, v1alpha1.TokenExpiresAtAnnotation, v1alpha1.ImportGenerationAnnotation}

// writeSecret creates the import's secret or updates it (optimistically: a concurrent change
// makes the update fail and the reconcile retry), leaving labels and annotations of others.
// existing holds data when it was read from the API server (keep), and then the secret is
// updated only where it differs; with metadata only (a new token), all data is replaced.
func (r *Reconciler) writeSecret(ctx context.Context, imp *v1alpha1.ServiceAccountImport, existing *corev1.Secret, d credential.Data) (*corev1.Secret, error) {
	desired, err := credential.NewSecret(imp, d)
	if err != nil {
		return nil, err
	}
	digest := secretDigest(desired)
	desired.Annotations = map[string]string{v1alpha1.SecretDigestAnnotation: digest}
	key := client.ObjectKeyFromObject(imp)
	if existing == nil {
		if err := r.client.Create(ctx, desired); err != nil {
			if apierrors.IsAlreadyExists(err) {
				if _, err := r.ownedSecret(ctx, r.apiReader, imp); err != nil {
					return nil, err
				}
			}
			return nil, err
		}
		r.verified.record(key, imp.UID, desired, digest)
		return desired, nil
	}
	updated := existing.DeepCopy()
	updated.Data = desired.Data
	if updated.Type == "" {
		updated.Type = desired.Type // known from metadata only; the API server's default too
	}
	if updated.Labels == nil {
		updated.Labels = map[string]string{}
	}
	updated.Labels[v1alpha1.ImportNameKey] = v1alpha1.SecretLabelValue(imp.Name)
	if updated.Annotations == nil {
		updated.Annotations = map[string]string{}
	}
	updated.Annotations[v1alpha1.SecretDigestAnnotation] = digest
	for _, a := range legacyAnnotations {
		delete(updated.Annotations, a)
	}
	if equality.Semantic.DeepEqual(existing, updated) {
		r.verified.record(key, imp.UID, existing, digest)
		return existing, nil
	}
	if err := r.client.Update(ctx, updated); err != nil {
		return nil, err
	}
	r.verified.record(key, imp.UID, updated, digest)
	return updated, nil
}

// report writes the import's status (when it changed), metrics and failure events.
func (r *Reconciler) report(ctx context.Context, out *outcome) error {
	imp := out.imp
	status := imp.Status.DeepCopy()
	status.ObservedGeneration = imp.Generation
	cond := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: out.reason, Message: out.message, ObservedGeneration: imp.Generation}
	if out.reason == v1alpha1.ReasonTokenIssued || out.reason == v1alpha1.ReasonFederated {
		cond.Status = metav1.ConditionTrue
	}
	prev := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)
	changed := prev == nil || prev.Reason != cond.Reason || prev.Message != cond.Message
	becameFederated := cond.Reason == v1alpha1.ReasonFederated && (prev == nil || prev.Reason != cond.Reason)
	meta.SetStatusCondition(&status.Conditions, cond)
	status.Secrets = nil
	if out.secret != nil {
		status.Secrets = []corev1.ObjectReference{{Name: out.secret.GetName()}}
	}
	status.ExpirationTimestamp, status.LastRefreshTime, status.TokenGeneration = nil, nil, 0
	if out.hasState {
		out.state.record(status)
		tokenExpiration.WithLabelValues(imp.Namespace, imp.Name).Set(float64(out.state.expires.Unix()))
	} else {
		tokenExpiration.DeleteLabelValues(imp.Namespace, imp.Name)
	}
	if out.refreshed || out.attempted {
		status.LastRefreshRequest = refreshRequest(imp)
	}
	if changed && cond.Status == metav1.ConditionFalse {
		r.events.Eventf(imp, nil, corev1.EventTypeWarning, out.reason, "RefreshToken", "%s", out.message)
	}
	if becameFederated {
		r.events.Eventf(imp, nil, corev1.EventTypeNormal, v1alpha1.ReasonFederated, "CheckFederation", "%s", out.message)
	}
	if equality.Semantic.DeepEqual(&imp.Status, status) {
		return nil
	}
	patch := client.MergeFrom(imp.DeepCopy())
	imp.Status = *status
	if err := r.client.Status().Patch(ctx, imp, patch); err != nil {
		return err
	}
	r.statusWrites.set(client.ObjectKeyFromObject(imp), imp.UID, imp.ResourceVersion)
	return nil
}

// newSecretMetadata is a secret's metadata, to be read from the cache (which holds nothing else of
// secrets) or from the API server.
func newSecretMetadata() *metav1.PartialObjectMetadata {
	s := &metav1.PartialObjectMetadata{}
	s.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return s
}

// perImport remembers a value per import, for the import of that UID only (a deleted and
// recreated import starts afresh). It is lost on restart. Reconciles of one import never run at
// once (the work queue's guarantee), so reading then writing an import's entry needs no more.
type perImport[V any] struct {
	mu     sync.Mutex
	byName map[types.NamespacedName]importEntry[V]
}

type importEntry[V any] struct {
	importUID types.UID
	value     V
}

func newPerImport[V any]() *perImport[V] {
	return &perImport[V]{byName: map[types.NamespacedName]importEntry[V]{}}
}

func (m *perImport[V]) get(key types.NamespacedName, importUID types.UID) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.byName[key]
	if !ok || e.importUID != importUID {
		var zero V
		return zero, false
	}
	return e.value, true
}

func (m *perImport[V]) set(key types.NamespacedName, importUID types.UID, v V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byName[key] = importEntry[V]{importUID: importUID, value: v}
}

func (m *perImport[V]) forget(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byName, key)
}

// verifiedSecrets remembers, per import, the version of its secret that this process last wrote
// or read whole, and the digest it then had: while both match, the secret is what the importer
// would write, and the importer need not read its data. After a restart the digest annotation
// stands in for it.
type verifiedSecrets struct {
	*perImport[verifiedSecret]
}

type verifiedSecret struct{ resourceVersion, digest string }

func newVerifiedSecrets() verifiedSecrets {
	return verifiedSecrets{newPerImport[verifiedSecret]()}
}

// current tells whether secret, as the cache holds it, is what the importer would write now
// (digest): unchanged since this process wrote or read it whole, or, for a secret this process has
// not seen, recorded as that by the digest annotation (then remembered).
func (v verifiedSecrets) current(key types.NamespacedName, importUID types.UID, secret metav1.Object, digest string) bool {
	if seen, ok := v.get(key, importUID); ok {
		return seen.resourceVersion == secret.GetResourceVersion() && seen.digest == digest
	}
	if secret.GetAnnotations()[v1alpha1.SecretDigestAnnotation] != digest {
		return false
	}
	v.record(key, importUID, secret, digest)
	return true
}

// record remembers secret, just written or read whole, as current with digest.
func (v verifiedSecrets) record(key types.NamespacedName, importUID types.UID, secret metav1.Object, digest string) {
	v.set(key, importUID, verifiedSecret{resourceVersion: secret.GetResourceVersion(), digest: digest})
}

// version is the secret's version this process last wrote or read for the import, if any.
func (v verifiedSecrets) version(key types.NamespacedName, importUID types.UID) (string, bool) {
	seen, ok := v.get(key, importUID)
	return seen.resourceVersion, ok
}
