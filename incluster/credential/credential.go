// Package credential renders what lets a client act as a service account of a remote cluster:
// the data of an import's secret (the original project's keys) and kubeconfigs. The importer
// writes secrets with it; the plugin's bootstrap writes the first cluster credential and its
// `kubeconfig` and `export` commands print self-contained kubeconfigs.
package credential

import (
	"errors"
	"fmt"
	"path"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// Data is a credential for a remote cluster.
type Data struct {
	// ClusterName names the cluster, user and context of rendered kubeconfigs.
	ClusterName string
	// Server is the remote API server's URL.
	Server string
	// CAData is the remote cluster's CA bundle (PEM); empty means the system's roots.
	CAData []byte
	// Namespace is the namespace of the remote service account, the kubeconfig's default.
	Namespace string
	// Token is a bearer token of the remote service account.
	Token string
}

// Validate checks that a client could use the credential.
func (d Data) Validate() error {
	var errs []error
	if d.ClusterName == "" {
		errs = append(errs, errors.New("credential: no cluster name"))
	}
	if d.Server == "" {
		errs = append(errs, errors.New("credential: no server"))
	}
	if d.Token == "" {
		errs = append(errs, errors.New("credential: no token"))
	}
	return errors.Join(errs...)
}

// SecretData renders an import's secret data: keys token, ca.crt (omitted without a CA),
// namespace, server and config, a kubeconfig for the secret mounted at mountDir (see
// MountedKubeconfig); for an import, mountDir is v1alpha1.MountPath(import name).
func (d Data) SecretData(mountDir string) (map[string][]byte, error) {
	cfg, err := d.MountedKubeconfig(mountDir)
	if err != nil {
		return nil, err
	}
	data := map[string][]byte{
		v1alpha1.SecretKeyToken:     []byte(d.Token),
		v1alpha1.SecretKeyNamespace: []byte(d.Namespace),
		v1alpha1.SecretKeyServer:    []byte(d.Server),
		v1alpha1.SecretKeyConfig:    cfg,
	}
	if len(d.CAData) > 0 {
		data[v1alpha1.SecretKeyCACert] = d.CAData
	}
	return data, nil
}

// Parse reads an import's secret data. ClusterName is not stored in it: callers set it.
func Parse(data map[string][]byte) Data {
	return Data{
		Server:    string(data[v1alpha1.SecretKeyServer]),
		CAData:    data[v1alpha1.SecretKeyCACert],
		Namespace: string(data[v1alpha1.SecretKeyNamespace]),
		Token:     string(data[v1alpha1.SecretKeyToken]),
	}
}

// MountedKubeconfig is the kubeconfig of a secret mounted at mountDir: the CA inline and the
// token by the absolute path of the mounted token file.
//
// Why this form: clients load the file in several ways, and only ClientConfigLoadingRules.Load
// (kubectl, BuildConfigFromFlags) resolves relative paths against the kubeconfig's folder;
// clientcmd.LoadFromFile followed by NewDefaultClientConfig, the sequence of the original
// project's config package, leaves them relative to the process's working directory and fails.
// An absolute tokenFile works with every loader, and client-go (kubernetes 1.14 and later)
// re-reads it about once a minute, so long-running clients follow the importer's rotations; an
// inline token would be stale after the first one. The CA is inline so that the file needs no
// second path and a copy taken out of the pod still knows the server's CA (its token path does
// not resolve there: `kubectl mcsa kubeconfig` prints a self-contained one).
func (d Data) MountedKubeconfig(mountDir string) ([]byte, error) {
	if !path.IsAbs(mountDir) {
		return nil, fmt.Errorf("credential: mount folder %q is not an absolute path", mountDir)
	}
	return d.kubeconfig(func(c *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
		c.CertificateAuthorityData = d.CAData
		u.TokenFile = path.Join(mountDir, v1alpha1.SecretKeyToken)
	})
}

// InlineKubeconfig is self-contained: token and CA inline, for a user's kubeconfig.
func (d Data) InlineKubeconfig() ([]byte, error) {
	return d.kubeconfig(func(c *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
		c.CertificateAuthorityData = d.CAData
		u.Token = d.Token
	})
}

func (d Data) kubeconfig(fill func(*clientcmdapi.Cluster, *clientcmdapi.AuthInfo)) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	cluster := &clientcmdapi.Cluster{Server: d.Server}
	user := &clientcmdapi.AuthInfo{}
	fill(cluster, user)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[d.ClusterName] = cluster
	cfg.AuthInfos[d.ClusterName] = user
	cfg.Contexts[d.ClusterName] = &clientcmdapi.Context{Cluster: d.ClusterName, AuthInfo: d.ClusterName, Namespace: d.Namespace}
	cfg.CurrentContext = d.ClusterName
	return clientcmd.Write(*cfg)
}

// RESTConfig is a client config using the credential inline.
func (d Data) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            d.Server,
		BearerToken:     d.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: d.CAData},
	}
}

// NewSecret is an import's secret: in the import's namespace, named v1alpha1.SecretName,
// labelled with the import's name and controlled by the import (so that it is garbage-collected
// with it and the importer recognizes it as its own).
func NewSecret(imp *v1alpha1.ServiceAccountImport, d Data) (*corev1.Secret, error) {
	data, err := d.SecretData(v1alpha1.MountPath(imp.Name))
	if err != nil {
		return nil, err
	}
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            v1alpha1.SecretName(imp.Name),
			Namespace:       imp.Namespace,
			Labels:          map[string]string{v1alpha1.ImportNameKey: v1alpha1.SecretLabelValue(imp.Name)},
			OwnerReferences: []metav1.OwnerReference{OwnerReference(imp)},
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}, nil
}

// OwnerReference makes imp the controller of its secret. BlockOwnerDeletion keeps the secret
// until foreground deletion of the import is done with it.
func OwnerReference(imp *v1alpha1.ServiceAccountImport) metav1.OwnerReference {
	return *metav1.NewControllerRef(imp, v1alpha1.GroupVersion.WithKind("ServiceAccountImport"))
}

// OwnedBy reports whether imp controls secret (a *corev1.Secret, or its metadata alone): only
// such a secret is the import's.
func OwnedBy(secret metav1.Object, imp *v1alpha1.ServiceAccountImport) bool {
	ref := metav1.GetControllerOfNoCopy(secret)
	if ref == nil || ref.UID != imp.UID || ref.Kind != "ServiceAccountImport" {
		return false
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && gv.Group == v1alpha1.GroupVersion.Group
}
