// Package automount is the mutating webhook that mounts the credentials of a pod's
// ServiceAccountImports, the way Kubernetes mounts a local service account token, and keeps its
// own serving certificate (package servingcert).
//
// A pod names its imports in the annotation v1alpha1.ImportNameKey. Each import gets a volume
// (v1alpha1.VolumeName) mounted read-only in every container and init container at
// v1alpha1.MountPath: for a token import, the secret the importer keeps
// (v1alpha1.SecretName); for a federated import (v1alpha1.ModeFederated), nothing copied from
// the remote cluster but a projected volume of the pod's own service-account token, for the
// remote cluster's audience (v1alpha1.FederatedAudience, v1alpha1.FederatedExpirationSeconds),
// and of the ConfigMap the importer writes (v1alpha1.FederatedConfigMapName). Both present
// their files (token, server, ca.crt, namespace, config; and as, for a federated import) at the
// same path.
package automount

import (
	"crypto/tls"
	"errors"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/internal/servingcert"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
)

// DefaultPort is the webhook server's port in the shipped manifests.
const DefaultPort = 9443

// Options configure the webhook. Zero fields take the defaults, which match the manifests.
type Options struct {
	// Host and Port the webhook server listens on (default all addresses, port 9443).
	Host string
	Port int
	// Namespace holds the Service and the certificate Secret. Zero names take the shipped
	// manifests' (package manifests).
	Namespace                string
	ServiceName              string
	SecretName               string
	WebhookConfigurationName string
	// ExtraHosts are DNS names or IP addresses the certificate covers besides the Service's.
	ExtraHosts []string
	// FieldOwner is the field manager of the certificate writes.
	FieldOwner string
	// Timing tunes certificate lifetimes and checks.
	Timing servingcert.Timing
	// Cache, when set, is read first (imports, and the metadata of secrets and, for federated
	// imports, ConfigMaps); a miss falls back to a direct read. Pass the manager's cache when it
	// holds only the importer's labelled secrets and ConfigMaps, as metadata
	// (importer.CacheOptions): a cache without a metadata informer of ConfigMaps would start
	// one, of every ConfigMap of the cluster, at the first federated pod, and make it wait for
	// its sync. Nil reads directly every time.
	Cache client.Reader
}

// Setup adds the webhook to mgr: its own webhook server (not bound to leader election: every
// replica serves), the certificate rotator, and a readiness check named "automount-webhook"
// that passes only when the server is up with a valid certificate whose CA is injected.
//
// mgr's scheme must know ServiceAccountImport. The manager's identity needs get on
// serviceaccountimports, secrets and configmaps in every namespace (the importer's role), and
// manifests/webhook's roles for the certificate. Without get on configmaps, federated imports
// are mounted unchecked (the check only informs when it cannot read; it is logged).
func Setup(mgr manager.Manager, opts Options) error {
	scheme := mgr.GetScheme()
	if !scheme.Recognizes(v1alpha1.GroupVersion.WithKind("ServiceAccountImport")) || !scheme.Recognizes(corev1.SchemeGroupVersion.WithKind("Pod")) {
		return errors.New("automount: the manager's scheme needs the core/v1 and multicluster.admiralty.io/v1alpha1 types")
	}
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if opts.Namespace == "" {
		opts.Namespace = manifests.Namespace
	}
	if opts.ServiceName == "" {
		opts.ServiceName = manifests.WebhookService
	}
	if opts.SecretName == "" {
		opts.SecretName = manifests.ServingCertSecret
	}
	if opts.WebhookConfigurationName == "" {
		opts.WebhookConfigurationName = manifests.WebhookConfiguration
	}
	if opts.FieldOwner == "" {
		opts.FieldOwner = manifests.ControllerFieldManager
	}
	svc := opts.ServiceName + "." + opts.Namespace
	hosts := append([]string{svc + ".svc", svc + ".svc.cluster.local", svc, opts.ServiceName}, opts.ExtraHosts...)

	rotator, err := servingcert.New(servingcert.Options{
		Namespace:                opts.Namespace,
		SecretName:               opts.SecretName,
		WebhookConfigurationName: opts.WebhookConfigurationName,
		Hosts:                    hosts,
		FieldOwner:               opts.FieldOwner,
		Timing:                   opts.Timing,
	}, mgr.GetAPIReader(), mgr.GetClient(), mgr.GetEventRecorder(manifests.WebhookService), mgr.GetLogger().WithName("servingcert"))
	if err != nil {
		return err
	}

	server := webhook.NewServer(webhook.Options{
		Host: opts.Host,
		Port: opts.Port,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			// The certificate comes from the rotator's memory. Setting GetCertificate is also
			// what keeps the server from reading files: it starts a certificate watcher on
			// CertDir only when GetCertificate is unset, and reads nothing else there without
			// a ClientCAName (controller-runtime v0.25, webhook.DefaultServer.Start).
			c.GetCertificate = rotator.GetCertificate
			// HTTP/2 stays off, as kubebuilder scaffolds it, against its stream-reset attacks
			// (CVE-2023-44487); the API server calls webhooks over HTTP/1.1 just as well.
			c.NextProtos = []string{"http/1.1"}
			c.MinVersion = tls.VersionTLS12
		}},
	})
	// The handler reads through a client of its own, without a client-side rate limit: a
	// throttled read holds a pod creation up to the API server's webhook timeout (at the
	// default 50 QPS, pods with 3 imports failed past ~16/s; docs/performance.md). The API
	// server's priority and fairness still protects it.
	cfg := rest.CopyConfig(mgr.GetConfig())
	cfg.QPS = -1
	reader, err := client.New(cfg, client.Options{Scheme: scheme, Mapper: mgr.GetRESTMapper(), HTTPClient: mgr.GetHTTPClient()})
	if err != nil {
		return err
	}
	server.Register(Path, &admission.Webhook{Handler: &Handler{Reader: reader, Cache: opts.Cache, Decoder: admission.NewDecoder(scheme)}})
	if err := mgr.Add(rotator); err != nil {
		return err
	}
	if err := mgr.Add(server); err != nil {
		return err
	}
	started := server.StartedChecker()
	return mgr.AddReadyzCheck("automount-webhook", func(req *http.Request) error {
		if err := rotator.ReadyCheck(req); err != nil {
			return err
		}
		return started(req)
	})
}
