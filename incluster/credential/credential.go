// Package credential renders what lets a client act as a service account of a remote cluster:
// the data of an import's secret (the original project's keys) and kubeconfigs. The importer
// writes secrets with it; the plugin's bootstrap writes the first cluster credential and its
// `kubeconfig` and `export` commands print self-contained kubeconfigs.
package credential

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

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
// namespace, server and config, a kubeconfig reading the token and CA from the files beside it.
func (d Data) SecretData() (map[string][]byte, error) {
	cfg, err := d.Kubeconfig()
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

// Kubeconfig refers to the token and CA by paths relative to itself (client-go resolves them
// against the kubeconfig's folder). Mounted from a secret volume, it follows token rotation:
// client-go rereads a token file, whereas an inline token would be stale after a refresh.
func (d Data) Kubeconfig() ([]byte, error) {
	return d.kubeconfig(func(c *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
		if len(d.CAData) > 0 {
			c.CertificateAuthority = v1alpha1.SecretKeyCACert
		}
		u.TokenFile = v1alpha1.SecretKeyToken
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
	data, err := d.SecretData()
	if err != nil {
		return nil, err
	}
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            v1alpha1.SecretName(imp.Name),
			Namespace:       imp.Namespace,
			Labels:          map[string]string{v1alpha1.ImportNameKey: LabelValue(imp.Name)},
			OwnerReferences: []metav1.OwnerReference{OwnerReference(imp)},
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}, nil
}

// LabelValue is the value of the v1alpha1.ImportNameKey label on an import's secret: the import's
// name, as in the original project, when it fits in a label value (63 characters); a longer name
// is truncated and suffixed with a hash of it. The label selects secrets; ownership is decided
// by the owner reference alone.
func LabelValue(importName string) string {
	const maxLen, hashLen = 63, 10
	if len(importName) <= maxLen {
		return importName
	}
	sum := sha256.Sum256([]byte(importName))
	// A label value ends with an alphanumeric character.
	prefix := strings.TrimRight(importName[:maxLen-hashLen-1], ".-")
	return prefix + "-" + hex.EncodeToString(sum[:])[:hashLen]
}

// OwnerReference makes imp the controller of its secret. BlockOwnerDeletion keeps the secret
// until foreground deletion of the import is done with it.
func OwnerReference(imp *v1alpha1.ServiceAccountImport) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion:         v1alpha1.GroupVersion.String(),
		Kind:               "ServiceAccountImport",
		Name:               imp.Name,
		UID:                imp.UID,
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}
}

// OwnedBy reports whether imp controls secret: only such a secret is the import's.
func OwnedBy(secret *corev1.Secret, imp *v1alpha1.ServiceAccountImport) bool {
	ref := metav1.GetControllerOfNoCopy(secret)
	if ref == nil || ref.UID != imp.UID || ref.Kind != "ServiceAccountImport" {
		return false
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && gv.Group == v1alpha1.GroupVersion.Group
}
