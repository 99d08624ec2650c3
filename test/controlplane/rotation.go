package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
)

// A rotation of a cluster's serving CA, as its administrators do it with an overlap window:
//
//	next, _ := c.NewCA("serving-ca-2")
//	c.TrustCAs(ctx, append(old, next.PEM()...)) // clients trust both; kube-root-ca.crt holds both
//	// ... clients pick the bundle up ...
//	c.ServeWith(ctx, next)                       // the API server serves with the new CA
//
// Only the serving CA rotates: client certificates (the admin's, the controller manager's) are
// still checked against the cluster CA.

// servingFiles are kube-apiserver's serving certificate and key files, and what the certificate
// says.
type servingFiles struct {
	cert, key string
	leaf      Leaf
}

// rootCAConfigMap is the ConfigMap kube-controller-manager publishes in every namespace with its
// --root-ca-file.
const rootCAConfigMap = "kube-root-ca.crt"

// NewCA makes another CA in the cluster's folder (Dir/name/ca.crt, ca.key), e.g. the next serving
// CA of a rotation.
func (c *Cluster) NewCA(name string) (*CA, error) {
	dir := filepath.Join(c.Dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return NewCA(dir, "kubectl-mcsa test CA "+name)
}

// TrustCAs is the first step of a rotation of the serving CA: the cluster's own clients trust
// bundle (PEM: CAData, Config, Clientset, and the admin kubeconfig, which the controller manager
// uses too), and kube-controller-manager runs again with --root-ca-file holding bundle, so that
// it publishes it in every namespace's kube-root-ca.crt, for clients to pick up before the API
// server serves with a CA of it. It returns once the default namespace's kube-root-ca.crt holds
// bundle. Clients built from the previous Config keep trusting what they did. Do not call it
// concurrently with other uses of the cluster.
func (c *Cluster) TrustCAs(ctx context.Context, bundle []byte) error {
	if _, err := certutil.ParseCertsPEM(bundle); err != nil {
		return fmt.Errorf("controlplane: cluster %s: CA bundle: %w", c.Name, err)
	}
	cfg := rest.CopyConfig(c.Config)
	cfg.CAData = bytes.Clone(bundle)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	c.CAData, c.Config, c.clientset = cfg.CAData, cfg, cs
	if err := WriteKubeconfig(c.Kubeconfig(), c); err != nil {
		return err
	}
	kcm := c.component("kube-controller-manager")
	if kcm == nil {
		return nil // nothing publishes the bundle
	}
	path := filepath.Join(c.Dir, fmt.Sprintf("root-ca-%d.crt", time.Now().UnixNano()))
	if err := os.WriteFile(path, bundle, 0o600); err != nil {
		return err
	}
	kcm.Stop()
	if err := c.startComponent(ctx, "kube-controller-manager", "--root-ca-file="+path); err != nil {
		return err
	}
	var last string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		if p := c.component("kube-controller-manager"); p.Exited() {
			return false, fmt.Errorf("controlplane: kube-controller-manager of cluster %s exited: %s", c.Name, p.Logs())
		}
		cm, err := c.clientset.CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, rootCAConfigMap, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = "it holds another bundle"
		return cm.Data["ca.crt"] == string(bundle), nil
	})
	if err != nil && wait.Interrupted(err) {
		return fmt.Errorf("controlplane: cluster %s: %s does not publish the new CA bundle: %s", c.Name, rootCAConfigMap, last)
	}
	return err
}

// ServeWith is the second step of a rotation of the serving CA: it issues kube-apiserver a
// serving certificate signed by ca, for the same names and addresses, and writes it over the
// files the API server serves, which it reloads without a restart: no request fails, and
// connections made before keep the certificate they were served (StopComponent and
// StartComponent then serve the new one to every client). It returns once a new TLS connection is
// served a certificate that ca verifies.
func (c *Cluster) ServeWith(ctx context.Context, ca *CA) error {
	if c.serving.cert == "" {
		return errors.New("controlplane: no serving certificate to replace")
	}
	dir, err := os.MkdirTemp(c.Dir, "serving-")
	if err != nil {
		return err
	}
	cert, key, err := ca.Issue(dir, "apiserver", c.serving.leaf)
	if err != nil {
		return err
	}
	// Each file renamed over the served one, so that the API server never reads half a file; the
	// key first: the pair loads once the certificate matches it (the API server keeps serving
	// the previous pair meanwhile).
	if err := os.Rename(key, c.serving.key); err != nil {
		return err
	}
	if err := os.Rename(cert, c.serving.cert); err != nil {
		return err
	}
	u, err := url.Parse(c.Server)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	dialer := &tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}}
	var last error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		conn, err := dialer.DialContext(ctx, "tcp", u.Host)
		if last = err; err != nil {
			return false, nil
		}
		// A handshake that verified is all that was asked.
		_ = conn.Close()
		return true, nil
	})
	if err != nil && wait.Interrupted(err) {
		return fmt.Errorf("controlplane: kube-apiserver of cluster %s does not serve the new certificate: %v\n%s", c.Name, last, c.Logs("kube-apiserver"))
	}
	return err
}
