package config

import (
	"fmt"
	"net"
	"os"
	"strings"

	"k8s.io/client-go/rest"
)

// The pod's own service account, where rest.InClusterConfig reads it; variables for tests.
var (
	inClusterTokenFile     = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	inClusterCAFile        = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
	inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
)

// inClusterConfigAndNamespace is rest.InClusterConfig and clientcmd's in-cluster namespace,
// with the token and CA followed like an import's. It returns rest.ErrNotInCluster outside a
// pod. Unlike rest.InClusterConfig, an unreadable CA is an error rather than a fallback to the
// system's roots.
func inClusterConfigAndNamespace() (*rest.Config, string, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, "", rest.ErrNotInCluster
	}
	cfg, err := fileConfig("https://"+net.JoinHostPort(host, port), inClusterTokenFile, inClusterCAFile)
	if err != nil {
		return nil, "", fmt.Errorf("pod's service account: %w", err)
	}
	return cfg, inClusterNamespace(), nil
}

// inClusterNamespace is clientcmd's: POD_NAMESPACE (set with the downward API), else the
// service account's namespace, else "default".
func inClusterNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := readFile(inClusterNamespaceFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "default"
}
