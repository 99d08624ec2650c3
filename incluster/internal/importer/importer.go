// Package importer is the controller keeping, for each ServiceAccountImport, a secret holding a
// short-lived token of a service account of a remote cluster, minted with the TokenRequest API
// and refreshed before it expires.
//
// It reaches each remote cluster B through a cluster credential: the import named after B in the
// importer's namespace, whose token (of B's service account multicluster-service-account/A) it
// renews with that same token. Credentials are looked up on each reconcile and their clients
// cached by version, so clusters come, change and go without a restart.
package importer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// FieldManager is the importer's field manager on every write.
const FieldManager = "mcsa-importer"

// clusterNameField indexes imports by the cluster they import from.
const clusterNameField = "spec.clusterName"

// Options configure the importer.
type Options struct {
	// Namespace holds the cluster credentials; default v1alpha1.DefaultNamespace.
	Namespace string
	// ClusterName is this cluster's name as remote clusters know it. Cluster credentials
	// carry it; it is needed only for clusters of KubeconfigClusters (allowed-importers checks).
	ClusterName string
	// KubeconfigClusters is a kubeconfig file whose contexts are clusters named after them,
	// reached with the context's credentials (development, out of cluster).
	KubeconfigClusters string
	// DefaultTokenLifetime is requested for imports without spec.expirationSeconds; default
	// one hour, at least ten minutes (the TokenRequest API's minimum).
	DefaultTokenLifetime time.Duration
	// MaxConcurrentReconciles is the number of workers; default 4.
	MaxConcurrentReconciles int
	// MaxRetryDelay caps the backoff after failures and the wait before rechecking a
	// conflicting secret; default five minutes.
	MaxRetryDelay time.Duration
	// RemoteQPS and RemoteBurst limit requests to each remote cluster; default 20 and 40.
	RemoteQPS   float32
	RemoteBurst int
	// RemoteTimeout bounds each request to a remote cluster; default 30 s.
	RemoteTimeout time.Duration
	// Clock is the time source; default the real clock.
	Clock clock.Clock
	// ServiceAccount is the importer's own service account, in Namespace: federated imports are
	// checked with its tokens (audience the remote cluster). Empty: federation is not checked.
	ServiceAccount string
	// FederationRecheck is how often a Ready federated import is checked again (B's RBAC or
	// authenticator may change with nothing changing in A); default five minutes.
	FederationRecheck time.Duration
	// CABundleRecheck is how often the importer reads the CA bundle each remote cluster reached
	// through a credential publishes (ConfigMap kube-root-ca.crt), to follow rotations of its
	// serving CA; default one minute.
	CABundleRecheck time.Duration
}

func (o *Options) defaults() error {
	if o.Namespace == "" {
		o.Namespace = v1alpha1.DefaultNamespace
	}
	if o.DefaultTokenLifetime == 0 {
		o.DefaultTokenLifetime = time.Hour
	}
	if shortest, longest := time.Duration(v1alpha1.MinExpirationSeconds)*time.Second, time.Duration(v1alpha1.MaxExpirationSeconds)*time.Second; o.DefaultTokenLifetime < shortest || o.DefaultTokenLifetime > longest {
		return fmt.Errorf("importer: default token lifetime %s: must be from %s to %s", o.DefaultTokenLifetime, shortest, longest)
	}
	if o.MaxConcurrentReconciles == 0 {
		o.MaxConcurrentReconciles = 4
	}
	if o.MaxRetryDelay == 0 {
		o.MaxRetryDelay = 5 * time.Minute
	}
	if o.RemoteQPS == 0 {
		o.RemoteQPS = 20
	}
	if o.RemoteBurst == 0 {
		o.RemoteBurst = 40
	}
	if o.RemoteTimeout == 0 {
		o.RemoteTimeout = 30 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.FederationRecheck == 0 {
		o.FederationRecheck = 5 * time.Minute
	}
	if o.CABundleRecheck == 0 {
		o.CABundleRecheck = time.Minute
	}
	return nil
}

// CacheOptions restrict the manager's cache of secrets to those labelled as an import's, and
// keep no managed fields. Pass them to the manager that Setup is given.
//
// The importer watches secrets as metadata only (builder.OnlyMetadata: informers of
// metav1.PartialObjectMetadata) and reads a secret's data from the API server when it needs it:
// anyone who may create secrets can set the import label, so what the cache holds per labelled
// secret must not depend on the secret's size. A transform dropping the data would not do: in
// controller-runtime v0.25 and client-go v0.37 the transform runs once the informer's reflector
// has received and decoded each object (the informer's FIFO applies it), so every labelled secret
// would still come whole over the wire and be decoded at every list and watch event, a relist by
// pages of up to 500 objects held at once (500 MiB of 1 MiB secrets). A metadata informer asks the
// API server for PartialObjectMetadata (Accept: ...;as=PartialObjectMetadata), so secrets' data
// never reaches the controller unless it reads one.
//
// The transform for secrets also drops data and string data, should a typed secret informer ever
// be started (a Get of a *corev1.Secret through the manager's client or cache starts one): a
// safety net for memory, not the mechanism.
func CacheOptions() cache.Options {
	labelled, err := labels.NewRequirement(v1alpha1.ImportNameKey, selection.Exists, nil)
	if err != nil {
		panic(err) // constant input
	}
	strip := cache.TransformStripManagedFields()
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: labels.NewSelector().Add(*labelled), Transform: func(in any) (any, error) {
				if s, ok := in.(*corev1.Secret); ok {
					s.Data, s.StringData = nil, nil
				}
				return strip(in)
			}},
			// Federated imports' ConfigMaps, likewise labelled, watched as metadata only.
			&corev1.ConfigMap{}: {Label: labels.NewSelector().Add(*labelled)},
		},
		// Nothing reads managed fields from the cache (an update without them keeps the
		// server's), and they are a good part of each cached import and secret's metadata.
		DefaultTransform: strip,
	}
}

// Reconciler reconciles ServiceAccountImports.
type Reconciler struct {
	client client.Client
	// apiReader reads around the cache before minting a token, so that a stale cache never
	// makes the importer mint twice or miss a conflicting secret.
	apiReader client.Reader
	clusters  *clusters
	events    recorder.EventRecorder
	opts      Options
	// verified spares reading secrets' data when they are as the importer wrote them.
	verified verifiedSecrets
	// statusWrites is, per import, the version its last status write by this process returned:
	// while the cache holds that version, it holds that write. With verified, it spares reading
	// around the cache before minting when the cache holds this process's last writes
	// (cacheCurrent).
	statusWrites *perImport[string]
	// anonymous reads this cluster as B's authenticator does (issuer discovery).
	anonymous rest.Interface
}

// Setup adds the importer's controller to mgr, whose cache must use CacheOptions.
func Setup(mgr manager.Manager, opts Options) error {
	if err := opts.defaults(); err != nil {
		return err
	}
	c := client.WithFieldOwner(mgr.GetClient(), FieldManager)
	cl := newClusters(mgr.GetClient(), mgr.GetAPIReader(), opts.Namespace, opts.ClusterName, func(cfg *rest.Config) {
		cfg.QPS, cfg.Burst, cfg.Timeout = opts.RemoteQPS, opts.RemoteBurst, opts.RemoteTimeout
		cfg.UserAgent = FieldManager
	})
	if opts.ServiceAccount != "" {
		cl.ownToken = func(audience string) oauth2.TokenSource {
			return newOwnTokenSource(c, opts.Namespace, opts.ServiceAccount, audience)
		}
	}
	anonymous, err := anonymousClient(mgr.GetConfig())
	if err != nil {
		return err
	}
	if opts.KubeconfigClusters != "" {
		skipped, err := cl.loadKubeconfig(opts.KubeconfigClusters)
		if err != nil {
			return fmt.Errorf("importer: --kubeconfig-clusters: %w", err)
		}
		if len(skipped) > 0 {
			mgr.GetLogger().Info("Kubeconfig contexts ignored: their names are not valid cluster names (DNS labels)", "contexts", skipped)
		}
	}
	r := &Reconciler{
		client:       c,
		apiReader:    mgr.GetAPIReader(),
		clusters:     cl,
		events:       mgr.GetEventRecorder(FieldManager),
		opts:         opts,
		verified:     newVerifiedSecrets(),
		statusWrites: newPerImport[string](),
		anonymous:    anonymous,
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.ServiceAccountImport{}, clusterNameField,
		func(o client.Object) []string { return []string{o.(*v1alpha1.ServiceAccountImport).Spec.ClusterName} }); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("serviceaccountimport").
		// Not on status-only updates, which are the importer's own: reconciling on them from a
		// cache that may not hold the new secret yet cost a redundant status patch per import.
		For(&v1alpha1.ServiceAccountImport{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		// Nor on a secret's creation: only the importer creates secrets it owns. Secrets are
		// watched (and cached) as metadata only: see CacheOptions.
		Owns(&corev1.Secret{}, builder.OnlyMetadata, builder.WithPredicates(predicate.Funcs{CreateFunc: func(event.CreateEvent) bool { return false }})).
		Owns(&corev1.ConfigMap{}, builder.OnlyMetadata, builder.WithPredicates(predicate.Funcs{CreateFunc: func(event.CreateEvent) bool { return false }})).
		// A credential appearing, changing or going away affects every import of its cluster:
		// those waiting for it become ready without a restart. Its status does not matter.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.importsOfCredential), builder.OnlyMetadata).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.importsOfCredential), builder.OnlyMetadata).
		Watches(&v1alpha1.ServiceAccountImport{}, handler.EnqueueRequestsFromMapFunc(r.importsOfCredential), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](500*time.Millisecond, opts.MaxRetryDelay),
		}).
		Complete(r)
}

// importsOfCredential maps a cluster credential, or its secret, to the imports of its cluster.
// Both are watched: the informers of different kinds do not order their events, and the
// credential is usable only once both are in the cache.
func (r *Reconciler) importsOfCredential(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetNamespace() != r.opts.Namespace {
		return nil
	}
	var cluster string
	switch o := o.(type) {
	case *v1alpha1.ServiceAccountImport:
		if !v1alpha1.IsClusterCredential(o, r.opts.Namespace) {
			return nil
		}
		cluster = o.Name
	default: // a secret's or a federated credential's ConfigMap's metadata
		cluster = o.GetLabels()[v1alpha1.ImportNameKey]
		if o.GetName() != v1alpha1.SecretName(cluster) && o.GetName() != v1alpha1.FederatedConfigMapName(cluster) {
			return nil
		}
	}
	var list v1alpha1.ServiceAccountImportList
	if err := r.client.List(ctx, &list, client.MatchingFields{clusterNameField: cluster}); err != nil {
		logf.FromContext(ctx).Error(err, "Listing the imports of a cluster", "cluster", cluster)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, imp := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&imp)})
	}
	return reqs
}

var errSecretConflict = errors.New("secret conflict")
