package importer

import (
	"context"
	"errors"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	// secret is the import's own secret, if any, and state the token it holds.
	secret   *corev1.Secret
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
	if err := r.report(ctx, out); err != nil {
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
	secret, err := r.ownedSecret(ctx, r.client, imp)
	if errors.Is(err, errSecretConflict) {
		return r.conflict(imp), nil
	} else if err != nil {
		return nil, err
	}
	rem, err := r.clusters.get(ctx, imp.Spec.ClusterName)
	if unknown := (*clusterUnknownError)(nil); errors.As(err, &unknown) {
		// No retry: the credential's secret is watched, its arrival requeues this import.
		st, ok := readTokenState(secret)
		return &outcome{imp: imp, reason: v1alpha1.ReasonClusterUnknown, secret: secret, state: st, hasState: ok,
			message: fmt.Sprintf("%v. Run `%s`.", unknown, grant.BootstrapCommand(r.clusters.importingCluster(ctx), imp.Spec.ClusterName))}, nil
	} else if err != nil {
		return nil, err
	}

	now := r.opts.Clock.Now()
	st, hasState := readTokenState(secret)
	trigger := refreshReason(imp, st, hasState, now)
	if trigger != "" {
		// About to mint a token: decide again on what the API server holds, not the cache, so
		// that a cache lagging behind our last write does not trigger a second refresh.
		fresh := &v1alpha1.ServiceAccountImport{}
		if err := r.apiReader.Get(ctx, client.ObjectKeyFromObject(imp), fresh); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil
			}
			return nil, err
		}
		if !fresh.DeletionTimestamp.IsZero() || fresh.Generation != imp.Generation {
			return nil, nil // a newer event follows
		}
		imp = fresh
		if secret, err = r.ownedSecret(ctx, r.apiReader, imp); errors.Is(err, errSecretConflict) {
			return r.conflict(imp), nil
		} else if err != nil {
			return nil, err
		}
		st, hasState = readTokenState(secret)
		trigger = refreshReason(imp, st, hasState, now)
	}
	if trigger == "" {
		return r.keep(ctx, imp, secret, st, rem, now)
	}
	return r.refresh(ctx, imp, secret, st, hasState, rem, trigger, now)
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

// ownedSecret returns the import's secret, nil if there is none, or errSecretConflict if a
// secret of that name belongs to something else.
func (r *Reconciler) ownedSecret(ctx context.Context, reader client.Reader, imp *v1alpha1.ServiceAccountImport) (*corev1.Secret, error) {
	s := &corev1.Secret{}
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

// keep keeps the current token, refreshing the rest of the secret (the cluster's server or CA
// may have changed), and schedules the next refresh.
func (r *Reconciler) keep(ctx context.Context, imp *v1alpha1.ServiceAccountImport, secret *corev1.Secret, st tokenState, rem *remote, now time.Time) (*outcome, error) {
	d := r.data(imp, rem, string(secret.Data[v1alpha1.SecretKeyToken]))
	secret, err := r.writeSecret(ctx, imp, secret, d, st)
	if err != nil {
		return nil, err
	}
	return &outcome{imp: imp, reason: v1alpha1.ReasonTokenIssued, message: r.readyMessage(imp, st),
		secret: secret, state: st, hasState: true, requeueAfter: refreshAt(st, string(imp.UID)).Sub(now)}, nil
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
		if hasState && now.Before(st.expires) {
			message += fmt.Sprintf(" The current token stays valid until %s.", st.expires.UTC().Format(time.RFC3339))
		}
		return &outcome{imp: imp, reason: reason, message: message, retry: true, secret: secret, state: st, hasState: hasState, attempted: true}, nil
	}
	sa := client.ObjectKey{Namespace: imp.Spec.Namespace, Name: imp.Spec.Name}
	importing := rem.importingCluster
	if importing == "" {
		importing = r.clusters.importingCluster(ctx)
	}

	// A credential renews itself and may do nothing else, not even read its service account.
	if !v1alpha1.IsClusterCredential(imp, r.opts.Namespace) {
		remoteSA, err := rem.client.CoreV1().ServiceAccounts(sa.Namespace).Get(ctx, sa.Name, metav1.GetOptions{})
		if err != nil {
			return failed(r.remoteFailure(imp, importing, err))
		}
		if allowed, err := grant.Allowed(remoteSA.Annotations, rem.importingCluster, imp.Namespace); !allowed {
			why := fmt.Sprintf("its annotation %s is %q", v1alpha1.AllowedImportersAnnotation, remoteSA.Annotations[v1alpha1.AllowedImportersAnnotation])
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
	}

	refreshAttempts.WithLabelValues(imp.Spec.ClusterName, trigger).Inc()
	issued := time.Unix(now.Unix(), 0) // the secret records seconds; keep the schedule identical after a restart
	seconds := int64(r.opts.DefaultTokenLifetime / time.Second)
	if imp.Spec.ExpirationSeconds != nil {
		seconds = *imp.Spec.ExpirationSeconds
	}
	tr, err := rem.client.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: imp.Spec.Audiences, ExpirationSeconds: ptr.To(seconds)},
	}, metav1.CreateOptions{})
	if err != nil {
		return failed(r.remoteFailure(imp, importing, err))
	}
	next := tokenState{issued: issued, expires: tr.Status.ExpirationTimestamp.Time, generation: imp.Generation}
	written, err := r.writeSecret(ctx, imp, secret, r.data(imp, rem, tr.Status.Token), next)
	if err != nil {
		// The token is lost, not leaked: it was never stored. The retry mints another.
		return nil, err
	}
	at := refreshAt(next, string(imp.UID))
	log.Info("Token refreshed", "trigger", trigger, "expires", next.expires, "nextRefresh", at)
	if hasState {
		r.events.Eventf(imp, written, corev1.EventTypeNormal, EventTokenRefreshed, "RefreshToken",
			"Refreshed the token (%s); it expires at %s", trigger, next.expires.UTC().Format(time.RFC3339))
	} else {
		r.events.Eventf(imp, written, corev1.EventTypeNormal, EventTokenIssued, "IssueToken",
			"Issued a token of %s in cluster %s; it expires at %s", sa, imp.Spec.ClusterName, next.expires.UTC().Format(time.RFC3339))
	}
	return &outcome{imp: imp, reason: v1alpha1.ReasonTokenIssued, message: r.readyMessage(imp, next),
		secret: written, state: next, hasState: true, refreshed: true, requeueAfter: at.Sub(now)}, nil
}

// remoteFailure turns an error of the remote cluster into a Ready reason and a message naming
// the remedy.
func (r *Reconciler) remoteFailure(imp *v1alpha1.ServiceAccountImport, importing string, err error) (string, string) {
	sa := imp.Spec.Namespace + "/" + imp.Spec.Name
	b := imp.Spec.ClusterName
	bootstrap := grant.BootstrapCommand(importing, b)
	cred := v1alpha1.IsClusterCredential(imp, r.opts.Namespace)
	switch {
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

func (r *Reconciler) data(imp *v1alpha1.ServiceAccountImport, rem *remote, token string) credential.Data {
	return credential.Data{ClusterName: imp.Spec.ClusterName, Server: rem.server, CAData: rem.caData, Namespace: imp.Spec.Namespace, Token: token}
}

func (r *Reconciler) readyMessage(imp *v1alpha1.ServiceAccountImport, st tokenState) string {
	exp := st.expires.UTC().Format(time.RFC3339)
	if v1alpha1.IsClusterCredential(imp, r.opts.Namespace) {
		return fmt.Sprintf("Cluster credential for %s: token of the importer's identity %s/%s, renewed with itself, expires at %s.", imp.Spec.ClusterName, imp.Spec.Namespace, imp.Spec.Name, exp)
	}
	return fmt.Sprintf("Token of service account %s/%s of cluster %s expires at %s.", imp.Spec.Namespace, imp.Spec.Name, imp.Spec.ClusterName, exp)
}

// writeSecret creates the import's secret or updates it (optimistically: a concurrent change
// makes the update fail and the reconcile retry), leaving labels and annotations of others.
func (r *Reconciler) writeSecret(ctx context.Context, imp *v1alpha1.ServiceAccountImport, existing *corev1.Secret, d credential.Data, st tokenState) (*corev1.Secret, error) {
	desired, err := credential.NewSecret(imp, d)
	if err != nil {
		return nil, err
	}
	st.annotate(desired)
	if existing == nil {
		if err := r.client.Create(ctx, desired); err != nil {
			if apierrors.IsAlreadyExists(err) {
				if _, err := r.ownedSecret(ctx, r.apiReader, imp); err != nil {
					return nil, err
				}
			}
			return nil, err
		}
		return desired, nil
	}
	updated := existing.DeepCopy()
	updated.Data = desired.Data
	if updated.Labels == nil {
		updated.Labels = map[string]string{}
	}
	updated.Labels[v1alpha1.ImportNameKey] = v1alpha1.SecretLabelValue(imp.Name)
	st.annotate(updated)
	if equality.Semantic.DeepEqual(existing, updated) {
		return existing, nil
	}
	if err := r.client.Update(ctx, updated); err != nil {
		return nil, err
	}
	return updated, nil
}

// report writes the import's status (when it changed), metrics and failure events.
func (r *Reconciler) report(ctx context.Context, out *outcome) error {
	imp := out.imp
	status := imp.Status.DeepCopy()
	status.ObservedGeneration = imp.Generation
	cond := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: out.reason, Message: out.message, ObservedGeneration: imp.Generation}
	if out.reason == v1alpha1.ReasonTokenIssued {
		cond.Status = metav1.ConditionTrue
	}
	prev := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)
	changed := prev == nil || prev.Reason != cond.Reason || prev.Message != cond.Message
	meta.SetStatusCondition(&status.Conditions, cond)
	status.Secrets = nil
	if out.secret != nil {
		status.Secrets = []corev1.ObjectReference{{Name: out.secret.Name}}
	}
	status.ExpirationTimestamp, status.LastRefreshTime = nil, nil
	if out.hasState {
		status.ExpirationTimestamp, status.LastRefreshTime = &metav1.Time{Time: out.state.expires}, &metav1.Time{Time: out.state.issued}
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
	if equality.Semantic.DeepEqual(&imp.Status, status) {
		return nil
	}
	patch := client.MergeFrom(imp.DeepCopy())
	imp.Status = *status
	return r.client.Status().Patch(ctx, imp, patch)
}
