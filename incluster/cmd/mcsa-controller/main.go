// Command mcsa-controller runs kubectl-mcsa's in-cluster controllers: the importer, which keeps
// secrets holding short-lived tokens of remote service accounts, and the automount webhook,
// which mounts them into the pods that ask for them. It runs in cluster (see manifests/) or, for
// development, as a local process (--kubeconfig, --kubeconfig-clusters, --automount-webhook=false).
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	cpv1alpha1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/internal/automount"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/internal/clusterprofile"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/internal/importer"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
)

func main() {
	var (
		imp                    importer.Options
		webhook                automount.Options
		automountWebhook       bool
		metricsAddr, probeAddr string
		secureMetrics          bool
		leaderElect            bool
		qps                    float64
		burst                  int
		remoteQPS              float64
		pprofAddr              string
		profiles               clusterprofile.Options
	)
	flag.StringVar(&imp.Namespace, "namespace", v1alpha1.DefaultNamespace, "Namespace of the controller: its cluster credentials and leader-election lease.")
	flag.StringVar(&imp.ClusterName, "cluster-name", "", "This cluster's name as remote clusters know it. Cluster credentials carry it; needed only with --kubeconfig-clusters.")
	flag.StringVar(&imp.ServiceAccount, "service-account", manifests.ControllerServiceAccount, "The controller's own service account, in --namespace: federated imports are checked with its tokens (audience the remote cluster); empty disables those checks.")
	flag.StringVar(&imp.KubeconfigClusters, "kubeconfig-clusters", "", "Kubeconfig file whose contexts are remote clusters named after them (development, out of cluster).")
	flag.DurationVar(&imp.DefaultTokenLifetime, "default-token-lifetime", time.Hour, "Token lifetime requested for imports without spec.expirationSeconds (at least 10m).")
	flag.IntVar(&imp.MaxConcurrentReconciles, "concurrency", 4, "Imports reconciled concurrently.")
	flag.DurationVar(&imp.MaxRetryDelay, "max-retry-delay", 5*time.Minute, "Longest backoff between retries of a failing import.")
	flag.Float64Var(&remoteQPS, "remote-qps", 20, "Requests per second to each remote cluster.")
	flag.IntVar(&imp.RemoteBurst, "remote-burst", 40, "Request burst to each remote cluster.")
	flag.Float64Var(&qps, "kube-api-qps", 50, "Requests per second to the local API server.")
	flag.IntVar(&burst, "kube-api-burst", 100, "Request burst to the local API server.")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "Address of the Prometheus metrics endpoint; 0 disables it.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS to callers the API server authenticates and authorizes for GET /metrics (ClusterRole mcsa-metrics-reader); false serves plain HTTP to anyone, for local development only.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so that only one replica reconciles.")
	flag.BoolVar(&automountWebhook, "automount-webhook", true, "Serve the automount webhook (manifests/webhook) and keep its certificate; every replica serves.")
	flag.IntVar(&webhook.Port, "webhook-port", automount.DefaultPort, "Port of the automount webhook.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT) of Go's /debug/pprof endpoints, for profiling (`kubectl port-forward`); empty, the default, disables them.")
	flag.StringVar(&profiles.Namespace, manifests.ClusterProfilesFlag, "", "Publish a ClusterProfile (sigs.k8s.io/cluster-inventory-api) per remote cluster credential in this namespace; off when empty. Needs the CRD and RBAC of `kubectl mcsa install --cluster-profiles NAMESPACE`.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	imp.RemoteQPS = float32(remoteQPS)
	if err := loopbackOnly(pprofAddr); err != nil {
		fmt.Fprintf(os.Stderr, "--pprof-bind-address: %v\n", err)
		os.Exit(2)
	}

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		log.Error(err, "Building the scheme")
		os.Exit(1)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		log.Error(err, "Building the scheme")
		os.Exit(1)
	}
	cacheOpts := importer.CacheOptions()
	if profiles.Namespace != "" {
		if err := cpv1alpha1.AddToScheme(scheme); err != nil {
			log.Error(err, "Building the scheme")
			os.Exit(1)
		}
		cacheOpts = clusterprofile.CacheOptions(cacheOpts, profiles.Namespace)
	}

	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "Loading the local cluster's client configuration")
		os.Exit(1)
	}
	cfg.QPS, cfg.Burst = float32(qps), burst

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   cacheOpts,
		Metrics:                 metricsOptions(metricsAddr, secureMetrics),
		HealthProbeBindAddress:  probeAddr,
		PprofBindAddress:        pprofAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        manifests.LeaderElectionLease,
		LeaderElectionNamespace: imp.Namespace,
		// The process exits right after the manager stops, so releasing the lease is safe and
		// lets a new replica take over at once.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		log.Error(err, "Creating the manager")
		os.Exit(1)
	}
	if err := importer.Setup(mgr, imp); err != nil {
		log.Error(err, "Setting up the importer")
		os.Exit(1)
	}
	if profiles.Namespace != "" {
		profiles.CredentialNamespace = imp.Namespace
		if err := clusterprofile.Setup(mgr, profiles); err != nil {
			log.Error(err, "Setting up the ClusterProfile publisher")
			os.Exit(1)
		}
	}
	if automountWebhook {
		// The webhook's Service, Secret and registration live in the controller's namespace.
		webhook.Namespace = imp.Namespace
		// The manager's cache holds imports and only the importer's labelled secrets, as
		// metadata (importer.CacheOptions); the webhook reads nothing else of secrets.
		webhook.Cache = mgr.GetCache()
		if err := automount.Setup(mgr, webhook); err != nil {
			log.Error(err, "Setting up the automount webhook")
			os.Exit(1)
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		log.Error(err, "Adding the health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		log.Error(err, "Adding the readiness check")
		os.Exit(1)
	}

	log.Info("Starting")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "Running the manager")
		os.Exit(1)
	}
}

// metricsOptions serves metrics as kubebuilder's scaffold does: over HTTPS (a self-signed
// certificate: Prometheus scrapes with insecure_skip_verify or the pod's own CA), with every
// request's bearer token checked by a TokenReview and its access to the non-resource URL
// /metrics by a SubjectAccessReview. Metrics name imports and clusters, so not every pod of the
// cluster should read them.
func metricsOptions(addr string, secure bool) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: addr, SecureServing: secure}
	if secure {
		opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return opts
}

// loopbackOnly refuses a pprof address reachable from outside the pod: the profiles are served
// without authentication and tell much about the process (its heap holds tokens).
func loopbackOnly(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return errors.New("must be a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT): pprof is served without authentication")
	}
	return nil
}
