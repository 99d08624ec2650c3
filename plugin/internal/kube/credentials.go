package kube

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ServerAndCA are the API server URL and CA bundle (PEM) of the context, as its kubeconfig
// gives them; the CA is empty when the kubeconfig relies on the system's roots.
func (c *Clients) ServerAndCA() (string, []byte, error) {
	ca := c.Config.CAData
	if len(ca) == 0 && c.Config.CAFile != "" {
		b, err := os.ReadFile(c.Config.CAFile)
		if err != nil {
			return "", nil, fmt.Errorf("reading the CA of %s: %w", c.Describe(), err)
		}
		ca = b
	}
	if c.Config.Insecure {
		return "", nil, fmt.Errorf("%s skips TLS verification (insecure-skip-tls-verify): a credential for it would too; give the cluster a CA", c.Describe())
	}
	return strings.TrimSuffix(c.Config.Host, "/"), ca, nil
}

// MintToken asks the API server for a token of namespace/name (TokenRequest).
func (c *Clients) MintToken(ctx context.Context, namespace, name string, ttl time.Duration, audiences []string) (*authenticationv1.TokenRequest, error) {
	seconds := int64(ttl / time.Second)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds, Audiences: audiences}}
	out, err := c.Kube.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, tr, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("minting a token for service account %s/%s in %s: %w", namespace, name, c.Describe(), c.APIError(err))
	}
	return out, nil
}

// ObjectName turns a kubeconfig context or cluster name into a valid object name, or says why it
// cannot: names like gke_project_zone_name are common and not DNS-1123 labels.
func ObjectName(clusterName, flag string) (string, error) {
	if len(validation.IsDNS1123Label(clusterName)) == 0 {
		return clusterName, nil
	}
	s := strings.ToLower(clusterName)
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, s)
	if len(s) > validation.DNS1123LabelMaxLength {
		s = s[len(s)-validation.DNS1123LabelMaxLength:]
	}
	s = strings.Trim(s, "-")
	if errs := validation.IsDNS1123Label(s); len(errs) > 0 || s == "" {
		return "", fmt.Errorf("cluster name %q is not a valid object name (%s): pass %s with a DNS-1123 label, e.g. %s cluster2", clusterName, strings.Join(errs, "; "), flag, flag)
	}
	return s, nil
}
