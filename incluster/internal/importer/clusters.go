package importer

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/oauth2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/transport"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
)

// remote is how the importer reaches one remote cluster.
type remote struct {
	// name is the cluster's name in this cluster.
	name   string
	server string
	// caData is the CA bundle the client trusts: the credential's, or the kubeconfig's.
	caData []byte
	// published caches the CA bundle the cluster publishes, for clusters reached through a
	// cluster credential (nil for others): the importer writes the credential's CA merged with it
	// (caBundle), into the credential too, whose next client then trusts it.
	published *publishedCA
	// importingCluster is this cluster's name as the remote cluster knows it: the name of the
	// importer's service account there, as used by grants and allowed-importers annotations.
	importingCluster string
	client           kubernetes.Interface
	// version identifies the credential the client was built from.
	version string
	// grants caches what the importer reads of the grants in this cluster before each
	// TokenRequest; dropped with the client when the credential changes.
	grants grantReads
	// federated reaches the cluster as the importer's own identity of this cluster (its
	// service account's token, audience v1alpha1.FederatedAudience), for federated imports'
	// checks; nil when the importer does not know its service account. A cluster with only a
	// federated credential has no client.
	federated kubernetes.Interface
	// canary caches the federated client's SelfSubjectReview (canaryTTL).
	canary canaryCache
}

// clusterUnknownError says why a cluster cannot be reached: no usable credential.
type clusterUnknownError struct{ cluster, why string }

func (e *clusterUnknownError) Error() string {
	return fmt.Sprintf("no usable credential for cluster %s: %s", e.cluster, e.why)
}

// clusters finds remote clusters: contexts of a kubeconfig (development), then cluster
// credentials, the imports named after their cluster in the importer's namespace. Clients built
// from credentials are cached by the credential's version, so a renewed or replaced credential
// is used at once and an unchanged one costs nothing.
type clusters struct {
	// reader reads the cache (imports, and secrets' metadata); apiReader the API server, for
	// a credential's token, which the cache does not hold.
	reader, apiReader client.Reader
	namespace         string
	// localName is this cluster's name for clusters without a credential (kubeconfig ones).
	localName string
	static    map[string]*remote
	tweak     func(*rest.Config)
	// ownToken is the importer's own token for a remote cluster's audience (federation); nil
	// when unknown.
	ownToken func(audience string) oauth2.TokenSource

	mu     sync.Mutex
	byName map[string]*remote
}

func newClusters(reader, apiReader client.Reader, namespace, localName string, tweak func(*rest.Config)) *clusters {
	return &clusters{reader: reader, apiReader: apiReader, namespace: namespace, localName: localName, tweak: tweak,
		static: map[string]*remote{}, byName: map[string]*remote{}}
}

// get returns the remote cluster named name, or a *clusterUnknownError.
func (c *clusters) get(ctx context.Context, name string) (*remote, error) {
	if r, ok := c.static[name]; ok {
		return r, nil
	}
	imp := &v1alpha1.ServiceAccountImport{}
	if err := c.reader.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: name}, imp); err != nil {
		if apierrors.IsNotFound(err) {
			c.forget(name)
			return nil, &clusterUnknownError{name, fmt.Sprintf("ServiceAccountImport %s/%s not found", c.namespace, name)}
		}
		return nil, err
	}
	if imp.Spec.ClusterName != name {
		c.forget(name)
		return nil, &clusterUnknownError{name, fmt.Sprintf("ServiceAccountImport %s/%s names cluster %q, not %q", c.namespace, name, imp.Spec.ClusterName, name)}
	}
	if v1alpha1.IsFederated(imp) {
		return c.getFederated(ctx, name, imp)
	}
	key := client.ObjectKey{Namespace: c.namespace, Name: v1alpha1.SecretName(name)}
	notFound := &clusterUnknownError{name, fmt.Sprintf("secret %s not found", key)}
	notOwned := &clusterUnknownError{name, fmt.Sprintf("secret %s is not controlled by ServiceAccountImport %s/%s", key, c.namespace, name)}
	cached := newSecretMetadata()
	if err := c.reader.Get(ctx, key, cached); err != nil {
		if apierrors.IsNotFound(err) {
			c.forget(name)
			return nil, notFound
		}
		return nil, err
	}
	if !credential.OwnedBy(cached, imp) {
		c.forget(name)
		return nil, notOwned
	}
	if r := c.current(name, fmt.Sprintf("%s/%d", cached.ResourceVersion, imp.Generation)); r != nil {
		return r, nil
	}

	// A new or changed credential: its token, which the cache does not hold, from the API server.
	secret := &corev1.Secret{}
	if err := c.apiReader.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			c.forget(name)
			return nil, notFound
		}
		return nil, err
	}
	if !credential.OwnedBy(secret, imp) {
		c.forget(name)
		return nil, notOwned
	}
	d := credential.Parse(secret.Data)
	d.ClusterName = name
	if err := d.Validate(); err != nil {
		c.forget(name)
		return nil, &clusterUnknownError{name, fmt.Sprintf("secret %s: %v", key, err)}
	}
	version := fmt.Sprintf("%s/%d", secret.ResourceVersion, imp.Generation)

	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.byName[name]
	if prev != nil && prev.version == version {
		return prev, nil
	}
	r, err := c.build(name, d.RESTConfig(), imp.Spec.Name)
	if err != nil {
		return nil, err
	}
	r.version = version
	// What the cluster publishes of its CA does not depend on the credential: a new client of the
	// same server (a renewed token, the merged CA written back) keeps it rather than reading again.
	r.published = &publishedCA{}
	if prev != nil && prev.published != nil && prev.server == r.server {
		r.published = prev.published
	}
	c.byName[name] = r
	return r, nil
}

// getFederated returns the cluster of a federated credential: its server and CA, from the
// credential's ConfigMap (written by `kubectl mcsa federate`), and no client but the federated
// one: no token of the cluster is kept in this one.
func (c *clusters) getFederated(ctx context.Context, name string, imp *v1alpha1.ServiceAccountImport) (*remote, error) {
	key := client.ObjectKey{Namespace: c.namespace, Name: v1alpha1.FederatedConfigMapName(name)}
	notFound := &clusterUnknownError{name, fmt.Sprintf("ConfigMap %s not found", key)}
	notOwned := &clusterUnknownError{name, fmt.Sprintf("ConfigMap %s is not controlled by ServiceAccountImport %s/%s", key, c.namespace, name)}
	cached := newConfigMapMetadata()
	if err := c.reader.Get(ctx, key, cached); err != nil {
		if apierrors.IsNotFound(err) {
			c.forget(name)
			return nil, notFound
		}
		return nil, err
	}
	if !credential.OwnedBy(cached, imp) {
		c.forget(name)
		return nil, notOwned
	}
	version := fmt.Sprintf("cm/%s/%d", cached.ResourceVersion, imp.Generation)
	if r := c.current(name, version); r != nil {
		return r, nil
	}
	cm := &corev1.ConfigMap{}
	if err := c.apiReader.Get(ctx, key, cm); err != nil {
		if apierrors.IsNotFound(err) {
			c.forget(name)
			return nil, notFound
		}
		return nil, err
	}
	if !credential.OwnedBy(cm, imp) {
		c.forget(name)
		return nil, notOwned
	}
	server := cm.Data[v1alpha1.SecretKeyServer]
	if server == "" {
		c.forget(name)
		return nil, &clusterUnknownError{name, fmt.Sprintf("ConfigMap %s has no %s", key, v1alpha1.SecretKeyServer)}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.byName[name]; r != nil && r.version == version {
		return r, nil
	}
	r, err := c.build(name, &rest.Config{Host: server, TLSClientConfig: rest.TLSClientConfig{CAData: []byte(cm.Data[v1alpha1.SecretKeyCACert])}}, imp.Spec.Name)
	if err != nil {
		return nil, err
	}
	r.client = nil
	r.version = version
	c.byName[name] = r
	return r, nil
}

// current is the client of cluster name if it was built from version of its credential.
func (c *clusters) current(name, version string) *remote {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.byName[name]; r != nil && r.version == version {
		return r
	}
	return nil
}

func (c *clusters) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byName, name)
}

func (c *clusters) build(name string, cfg *rest.Config, importingCluster string) (*remote, error) {
	if err := rest.LoadTLSFiles(cfg); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	caData := cfg.CAData
	c.tweak(cfg)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	r := &remote{name: name, server: cfg.Host, caData: caData, importingCluster: importingCluster, client: cs}
	if c.ownToken != nil {
		// The importer's own identity, as B's authenticator for this cluster's issuer maps it:
		// nothing of the credential but where B is.
		fed := rest.AnonymousClientConfig(cfg)
		fed.WrapTransport = transport.TokenSourceWrapTransport(transport.NewCachedTokenSource(c.ownToken(v1alpha1.FederatedAudience(name))))
		if r.federated, err = kubernetes.NewForConfig(fed); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", name, err)
		}
	}
	return r, nil
}

// loadKubeconfig makes each context of a kubeconfig file a cluster named after the context.
// Contexts whose names are not valid cluster names are reported: no import can name them.
func (c *clusters) loadKubeconfig(path string) (skipped []string, err error) {
	raw, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, err
	}
	for name := range raw.Contexts {
		if len(validation.IsDNS1123Label(name)) > 0 {
			skipped = append(skipped, name)
			continue
		}
		cfg, err := clientcmd.NewNonInteractiveClientConfig(*raw, name, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("%s: context %s: %w", path, name, err)
		}
		r, err := c.build(name, cfg, c.localName)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		c.static[name] = r
	}
	return skipped, nil
}

// importingCluster is this cluster's name as cluster credentials give it (the name of the
// importer's identity in remote clusters), for remedies naming a cluster without a credential.
func (c *clusters) importingCluster(ctx context.Context) string {
	if c.localName != "" {
		return c.localName
	}
	var list v1alpha1.ServiceAccountImportList
	if err := c.reader.List(ctx, &list, client.InNamespace(c.namespace)); err == nil {
		for i := range list.Items {
			if v1alpha1.IsClusterCredential(&list.Items[i], c.namespace) && list.Items[i].Spec.Namespace == grant.Namespace {
				return list.Items[i].Spec.Name
			}
		}
	}
	return "THIS_CLUSTER"
}
