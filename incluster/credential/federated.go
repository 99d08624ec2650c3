package credential

import (
	"errors"
	"fmt"
	"path"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// Federated is what a federated import's pods need besides their own token: where the remote
// cluster is and whom to act as there. Nothing in it is a secret.
type Federated struct {
	// ClusterName names the cluster, user and context of the kubeconfig.
	ClusterName string
	// Server is the remote API server's URL; CAData its CA bundle (PEM), empty for the
	// system's roots.
	Server string
	CAData []byte
	// Namespace and ServiceAccount name the remote service account the pods act as.
	Namespace, ServiceAccount string
}

// ConfigMapData renders a federated import's ConfigMap for the import mounted at mountDir: keys
// server, ca.crt (omitted without a CA), namespace, as (the service account's user name) and
// config, a kubeconfig reading the pod's own token from mountDir/token (the projected token the
// webhook mounts there, which the kubelet rotates) and impersonating the service account.
func (f Federated) ConfigMapData(mountDir string) (map[string]string, error) {
	if f.ClusterName == "" || f.Server == "" || f.Namespace == "" || f.ServiceAccount == "" {
		return nil, errors.New("credential: a federated import needs a cluster name, a server and a service account")
	}
	if !path.IsAbs(mountDir) {
		return nil, fmt.Errorf("credential: mount folder %q is not an absolute path", mountDir)
	}
	as := v1alpha1.ServiceAccountUser(f.Namespace, f.ServiceAccount)
	cfg, err := Data{ClusterName: f.ClusterName, Server: f.Server, Namespace: f.Namespace, Token: "-"}.kubeconfig(
		func(c *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
			c.CertificateAuthorityData = f.CAData
			u.TokenFile = path.Join(mountDir, v1alpha1.SecretKeyToken)
			u.Impersonate = as
		})
	if err != nil {
		return nil, err
	}
	data := map[string]string{
		v1alpha1.SecretKeyServer:    f.Server,
		v1alpha1.SecretKeyNamespace: f.Namespace,
		v1alpha1.KeyAs:              as,
		v1alpha1.SecretKeyConfig:    string(cfg),
	}
	if len(f.CAData) > 0 {
		data[v1alpha1.SecretKeyCACert] = string(f.CAData)
	}
	return data, nil
}

// NewConfigMap is a federated import's ConfigMap: in the import's namespace, named
// v1alpha1.FederatedConfigMapName, labelled with the import's name and controlled by the import.
func NewConfigMap(imp *v1alpha1.ServiceAccountImport, f Federated) (*corev1.ConfigMap, error) {
	data, err := f.ConfigMapData(v1alpha1.MountPath(imp.Name))
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            v1alpha1.FederatedConfigMapName(imp.Name),
			Namespace:       imp.Namespace,
			Labels:          map[string]string{v1alpha1.ImportNameKey: v1alpha1.SecretLabelValue(imp.Name)},
			OwnerReferences: []metav1.OwnerReference{OwnerReference(imp)},
		},
		Data: data,
	}, nil
}
