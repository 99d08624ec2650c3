package clusterprofile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	cpv1alpha1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
)

// FieldManager writes the published profiles: server-side apply under this name owns only what
// the publisher says, so that another cluster manager's fields, access providers and conditions
// of the same profile survive.
const FieldManager = "mcsa-cluster-profile-publisher"

// Options configure the publisher.
type Options struct {
	// Namespace is where profiles are published (--cluster-profiles-namespace).
	Namespace string
	// CredentialNamespace is the importer's namespace, which holds the cluster credentials.
	CredentialNamespace string
	// Resync is how often a profile is checked without an event (its version, a missed change).
	Resync time.Duration
}

// CacheOptions restricts the manager's cache of ClusterProfiles to the namespace the publisher
// writes, which is all its RBAC (a Role there) lets it watch.
func CacheOptions(opts cache.Options, namespace string) cache.Options {
	if opts.ByObject == nil {
		opts.ByObject = map[client.Object]cache.ByObject{}
	}
	opts.ByObject[&cpv1alpha1.ClusterProfile{}] = cache.ByObject{Namespaces: map[string]cache.Config{namespace: {}}}
	return opts
}

// versionFunc reads a cluster's Kubernetes version with its credential.
type versionFunc func(ctx context.Context, cfg *rest.Config) (string, error)

// Reconciler publishes the profile named after each cluster credential.
type Reconciler struct {
	client    client.Client
	apiReader client.Reader
	opts      Options
	version   versionFunc
	now       func() time.Time

	mu    sync.Mutex
	state map[string]*published
}

// published is what the publisher remembers of a profile: when it last wrote its status (the
// pace KEP-4322 asks for) and the cluster's version, so that a failed read does not withdraw it.
type published struct {
	lastWrite           time.Time
	version, versionFor string
	versionAt           time.Time
}

// Setup adds the publisher to mgr, whose cache must hold ClusterProfiles of opts.Namespace
// (CacheOptions) and whose scheme must know them.
func Setup(mgr manager.Manager, opts Options) error {
	if opts.Namespace == "" || opts.CredentialNamespace == "" {
		return errors.New("clusterprofile: no namespace to publish in, or no importer namespace")
	}
	if opts.Resync == 0 {
		opts.Resync = VersionInterval
	}
	r := &Reconciler{
		client:    mgr.GetClient(),
		apiReader: mgr.GetAPIReader(),
		opts:      opts,
		version:   serverVersion,
		now:       time.Now,
		state:     map[string]*published{},
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("clusterprofile").
		Watches(&v1alpha1.ServiceAccountImport{}, handler.EnqueueRequestsFromMapFunc(r.ofCredential)).
		// The credential's secret holds the server and CA; it is cached as metadata only (see
		// importer.CacheOptions), and read when a profile is reconciled.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.ofSecret), builder.OnlyMetadata).
		// A profile edited or deleted by someone else is put back.
		Watches(&cpv1alpha1.ClusterProfile{}, handler.EnqueueRequestsFromMapFunc(r.ofProfile)).
		Complete(r)
}

// Requests are keyed by cluster name, which names both the credential and the profile.
func request(cluster string) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: cluster}}}
}

func (r *Reconciler) ofCredential(_ context.Context, o client.Object) []reconcile.Request {
	if imp, ok := o.(*v1alpha1.ServiceAccountImport); ok && v1alpha1.IsClusterCredential(imp, r.opts.CredentialNamespace) {
		return request(imp.Name)
	}
	return nil
}

func (r *Reconciler) ofSecret(_ context.Context, o client.Object) []reconcile.Request {
	cluster := o.GetLabels()[v1alpha1.ImportNameKey]
	if o.GetNamespace() != r.opts.CredentialNamespace || cluster == "" || o.GetName() != v1alpha1.SecretName(cluster) {
		return nil
	}
	return request(cluster)
}

func (r *Reconciler) ofProfile(_ context.Context, o client.Object) []reconcile.Request {
	if o.GetNamespace() != r.opts.Namespace {
		return nil
	}
	return request(o.GetName())
}

// Reconcile publishes the profile of cluster req.Name, or withdraws it when the credential is
// gone.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	cluster := req.Name
	log := logf.FromContext(ctx).WithValues("cluster", cluster, "profile", r.opts.Namespace+"/"+cluster)
	ctx = logf.IntoContext(ctx, log)

	var profile *cpv1alpha1.ClusterProfile
	p := &cpv1alpha1.ClusterProfile{}
	switch err := r.client.Get(ctx, types.NamespacedName{Namespace: r.opts.Namespace, Name: cluster}, p); {
	case err == nil:
		profile = p
	case !apierrors.IsNotFound(err):
		return reconcile.Result{}, fmt.Errorf("reading ClusterProfile %s/%s: %w", r.opts.Namespace, cluster, err)
	}

	imp := &v1alpha1.ServiceAccountImport{}
	switch err := r.client.Get(ctx, types.NamespacedName{Namespace: r.opts.CredentialNamespace, Name: cluster}, imp); {
	case apierrors.IsNotFound(err):
		return reconcile.Result{}, r.withdraw(ctx, cluster, profile)
	case err != nil:
		return reconcile.Result{}, err
	case !v1alpha1.IsClusterCredential(imp, r.opts.CredentialNamespace) || !imp.DeletionTimestamp.IsZero():
		return reconcile.Result{}, r.withdraw(ctx, cluster, profile)
	}

	secret := &corev1.Secret{}
	switch err := r.apiReader.Get(ctx, types.NamespacedName{Namespace: imp.Namespace, Name: v1alpha1.SecretName(imp.Name)}, secret); {
	case apierrors.IsNotFound(err):
		// The importer or bootstrap writes it; its creation requeues this cluster.
		log.V(1).Info("The cluster credential has no secret yet")
		return reconcile.Result{}, nil
	case err != nil:
		return reconcile.Result{}, err
	}
	d := credential.Parse(secret.Data)
	if d.Server == "" {
		log.Info("The cluster credential's secret names no server: not published", "secret", secret.Namespace+"/"+secret.Name)
		return reconcile.Result{}, nil
	}
	ready := meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil {
		// The importer's report, a status update of the credential, requeues this cluster.
		log.V(1).Info("The importer has not reported on the cluster credential yet")
		return reconcile.Result{}, nil
	}
	c := Credential{Cluster: cluster, Namespace: imp.Namespace, Server: d.Server, CAData: d.CAData, Ready: *ready}
	c.Version = r.clusterVersion(ctx, c, d)

	if Managed(profile) {
		if err := r.applySpec(ctx, cluster, profile); err != nil {
			return reconcile.Result{}, err
		}
	}
	now := r.now()
	status, err := Status(c, profile, now)
	if err != nil {
		return reconcile.Result{}, err
	}
	resync := reconcile.Result{RequeueAfter: r.opts.Resync}
	if Current(status, profile) {
		return resync, nil
	}
	if wait := WriteDelay(r.lastWrite(cluster), now); wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	if err := r.applyStatus(ctx, cluster, &status, Managed(profile)); err != nil {
		return reconcile.Result{}, err
	}
	r.wrote(cluster, now)
	log.V(1).Info("Published", "healthy", status.Conditions)
	return resync, nil
}

// clusterVersion is the cluster's Kubernetes version, read with the credential's token at most
// every VersionInterval; a failed read keeps the last one known.
func (r *Reconciler) clusterVersion(ctx context.Context, c Credential, d credential.Data) string {
	r.mu.Lock()
	st := r.stateOf(c.Cluster)
	due := VersionDue(st.versionAt, st.versionFor, c.Server, r.now())
	known := st.version
	r.mu.Unlock()
	if !due || d.Token == "" {
		return known
	}
	cfg := &rest.Config{Host: d.Server, BearerToken: d.Token, TLSClientConfig: rest.TLSClientConfig{CAData: d.CAData},
		Timeout: 5 * time.Second, UserAgent: FieldManager}
	v, err := r.version(ctx, cfg)
	r.mu.Lock()
	defer r.mu.Unlock()
	st.versionAt, st.versionFor = r.now(), c.Server
	if err != nil {
		logf.FromContext(ctx).Info("Reading the cluster's version", "error", err.Error())
		return st.version
	}
	st.version = v
	return v
}

func serverVersion(_ context.Context, cfg *rest.Config) (string, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return "", err
	}
	info, err := dc.ServerVersion()
	if err != nil {
		return "", err
	}
	return info.GitVersion, nil
}

func (r *Reconciler) stateOf(cluster string) *published {
	st := r.state[cluster]
	if st == nil {
		st = &published{}
		r.state[cluster] = st
	}
	return st
}

func (r *Reconciler) lastWrite(cluster string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stateOf(cluster).lastWrite
}

func (r *Reconciler) wrote(cluster string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stateOf(cluster).lastWrite = at
}

// applySpec creates the profile, or keeps its cluster-manager label and spec, when kubectl-mcsa
// manages it. spec.clusterManager is immutable: a profile of another manager is left alone.
func (r *Reconciler) applySpec(ctx context.Context, cluster string, observed *cpv1alpha1.ClusterProfile) error {
	if observed != nil && observed.Labels[cpv1alpha1.LabelClusterManagerKey] == v1alpha1.ClusterManagerName &&
		observed.Spec.ClusterManager.Name == v1alpha1.ClusterManagerName {
		return nil
	}
	u := r.object(cluster)
	u.SetLabels(map[string]string{cpv1alpha1.LabelClusterManagerKey: v1alpha1.ClusterManagerName})
	if err := unstructured.SetNestedField(u.Object, v1alpha1.ClusterManagerName, "spec", "clusterManager", "name"); err != nil {
		return err
	}
	if err := r.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying ClusterProfile %s/%s: %w", r.opts.Namespace, cluster, remedy(err))
	}
	return nil
}

// applyStatus applies what the publisher says of the status. It forces ownership only of a
// profile it manages: of another manager's, it claims nothing that manager wrote.
func (r *Reconciler) applyStatus(ctx context.Context, cluster string, s *cpv1alpha1.ClusterProfileStatus, managed bool) error {
	u := r.object(cluster)
	if s != nil {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		// Only what the publisher says: an absent version or condition list is not a claim.
		if s.Version.Kubernetes == "" {
			delete(m, "version")
		}
		if len(s.Conditions) == 0 {
			delete(m, "conditions")
		}
		u.Object["status"] = m
	}
	opts := []client.SubResourceApplyOption{client.FieldOwner(FieldManager)}
	if managed {
		opts = append(opts, client.ForceOwnership)
	}
	if err := r.client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), opts...); err != nil {
		return fmt.Errorf("applying the status of ClusterProfile %s/%s: %w", r.opts.Namespace, cluster, remedy(err))
	}
	return nil
}

// withdraw deletes the profile of a cluster the importer no longer has a credential for, when
// kubectl-mcsa manages it; of another manager's profile it removes only its access provider, by
// applying an empty status (the fields it owned go).
func (r *Reconciler) withdraw(ctx context.Context, cluster string, observed *cpv1alpha1.ClusterProfile) error {
	r.mu.Lock()
	delete(r.state, cluster)
	r.mu.Unlock()
	if observed == nil {
		return nil
	}
	if !Managed(observed) {
		if !hasProvider(observed) {
			return nil
		}
		return r.applyStatus(ctx, cluster, nil, false)
	}
	if err := r.client.Delete(ctx, observed, client.Preconditions{UID: &observed.UID}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting ClusterProfile %s/%s: %w", r.opts.Namespace, cluster, remedy(err))
	}
	logf.FromContext(ctx).Info("Withdrew the profile: no cluster credential")
	return nil
}

func hasProvider(p *cpv1alpha1.ClusterProfile) bool {
	for _, ap := range p.Status.AccessProviders {
		if ap.Name == v1alpha1.AccessProviderName {
			return true
		}
	}
	return false
}

func (r *Reconciler) object(cluster string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(cpv1alpha1.ClusterProfileSchemeGroupVersionKind)
	u.SetNamespace(r.opts.Namespace)
	u.SetName(cluster)
	return u
}

// remedy adds the fix to the errors an operator can fix.
func remedy(err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w (the controller needs the RBAC of `kubectl mcsa install --cluster-profiles NAMESPACE`)", err)
	case meta.IsNoMatchError(err) || apierrors.IsNotFound(err):
		return fmt.Errorf("%w (install the ClusterProfile CRD and the namespace: `kubectl mcsa install --cluster-profiles NAMESPACE`)", err)
	}
	return err
}
