package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// DiscoveryPath is where an API server serves its service-account issuer's discovery document.
const DiscoveryPath = "/.well-known/openid-configuration"

// discoveryDocument is what the engine reads of a discovery document.
type discoveryDocument struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// ReadIssuer is the service-account issuer of c's cluster: the `issuer` of the discovery
// document its API server serves, read with the kubeconfig's credentials (the caller's own
// access: the document is not served anonymously before federate's binding).
func ReadIssuer(ctx context.Context, c *kube.Clients) (string, error) {
	doc, err := readDiscovery(ctx, c)
	return doc.Issuer, err
}

func readDiscovery(ctx context.Context, c *kube.Clients) (discoveryDocument, error) {
	var doc discoveryDocument
	rc, err := restClient(c)
	if err != nil {
		return doc, err
	}
	body, err := rc.Get().AbsPath(DiscoveryPath).DoRaw(ctx)
	if err != nil {
		return doc, fmt.Errorf("reading the service-account issuer of %s (GET %s): %w", c.Describe(), DiscoveryPath, c.APIError(err))
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Issuer == "" {
		return doc, fmt.Errorf("reading the service-account issuer of %s: %s is not a discovery document with an issuer (%v)", c.Describe(), DiscoveryPath, err)
	}
	return doc, nil
}

// JWKSPath is where kube-apiserver serves its issuer's keys (JWKS), whatever jwks_uri its
// discovery document names.
const JWKSPath = "/openid/v1/jwks"

// MaxJWKSSize bounds the JWKS read: kube-apiserver's holds one key per public key it verifies
// with (--service-account-key-file), under a kilobyte each.
const MaxJWKSSize = 1 << 20

// keyIDPattern is what a key ID may be to be named in B's entry (grant.Issuer.KeyIDs):
// kube-apiserver's are the unpadded URL-safe base64 of a SHA-256.
var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._~+/=:-]{1,128}$`)

// ReadKeyIDs are the key IDs of c's service-account issuer, sorted: those of the JWKS at the
// path of jwksURI (the discovery document's jwks_uri) on c's API server, read with the
// kubeconfig's credentials, which go nowhere else. When that path is not served there (a
// jwks_uri elsewhere: kube-apiserver --service-account-jwks-uri), kube-apiserver's own JWKSPath
// is read: the keys it verifies with.
func ReadKeyIDs(ctx context.Context, c *kube.Clients, jwksURI string) ([]string, error) {
	path := JWKSPath
	if u, err := url.Parse(jwksURI); err == nil && u.Path != "" {
		path = u.Path
	}
	body, err := readJWKS(ctx, c, path)
	if apierrors.IsNotFound(err) && path != JWKSPath {
		path = JWKSPath
		body, err = readJWKS(ctx, c, path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the service-account keys of %s (GET %s): %w", c.Describe(), path, err)
	}
	kids, err := keyIDs(body)
	if err != nil {
		return nil, fmt.Errorf("the service-account keys of %s (GET %s): %w", c.Describe(), path, err)
	}
	return kids, nil
}

func readJWKS(ctx context.Context, c *kube.Clients, path string) ([]byte, error) {
	rc, err := restClient(c)
	if err != nil {
		return nil, err
	}
	stream, err := rc.Get().AbsPath(path).Stream(ctx)
	if err != nil {
		if apierrors.IsForbidden(err) {
			return nil, c.APIError(err) // names the fix
		}
		return nil, err
	}
	defer stream.Close()
	body, err := io.ReadAll(io.LimitReader(stream, MaxJWKSSize+1))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxJWKSSize {
		return nil, fmt.Errorf("larger than %d bytes: not a JWKS of kube-apiserver", MaxJWKSSize)
	}
	return body, nil
}

// keyIDs are the key IDs of a JWKS, sorted, without duplicates.
func keyIDs(jwks []byte) ([]string, error) {
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		return nil, fmt.Errorf("not a JWKS: %v", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("no key: B could verify none of its tokens")
	}
	kids := make([]string, 0, len(set.Keys))
	for _, k := range set.Keys {
		if !keyIDPattern.MatchString(k.Kid) {
			return nil, fmt.Errorf("key ID %q: want up to 128 letters, digits or ._~+/=:- as kube-apiserver gives its keys (B's entry names them, so that it changes when they do)", k.Kid)
		}
		kids = append(kids, k.Kid)
	}
	slices.Sort(kids)
	return slices.Compact(kids), nil
}

// restClient is the raw REST client of c's clientset, or one built from its config (fake
// clientsets have none).
func restClient(c *kube.Clients) (rest.Interface, error) {
	if rc := c.Kube.Discovery().RESTClient(); rc != nil {
		return rc, nil
	}
	cfg := rest.CopyConfig(c.Config)
	cfg.GroupVersion = &schema.GroupVersion{}
	cfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	return rest.UnversionedRESTClientFor(cfg)
}

// sharedIssuerHosts are the issuers that clusters get by default (kubeadm, kind, k3s, k3d,
// minikube, AKS without its OIDC issuer…): the in-cluster name of the API server, the same in
// every cluster.
var sharedIssuerHosts = map[string]bool{
	"kubernetes":                           true,
	"kubernetes.default":                   true,
	"kubernetes.default.svc":               true,
	"kubernetes.default.svc.cluster.local": true,
}

// CheckIssuer refuses an issuer that B cannot tell apart: a default shared by every cluster
// of a distribution, or one that is not a URL (B's authenticator needs https).
func CheckIssuer(issuer, cluster, contextFlag string) error {
	s := strings.ToLower(strings.TrimSpace(issuer))
	host := strings.TrimSuffix(s, "/")
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		host = u.Hostname()
		if p := strings.Trim(u.Path, "/"); p != "" {
			host = "" // a path makes it someone's own
		}
	}
	if sharedIssuerHosts[host] {
		return fmt.Errorf("the service-account issuer of %s is %q, the default that clusters of the same distribution share: "+
			"another cluster trusting it would accept the tokens of every cluster with that default. Give %s its own issuer, first in the list (the first one signs new tokens; "+
			"keep the old one after it while existing tokens expire), then run this again: "+
			"kube-apiserver --service-account-issuer=https://%s.example.com --service-account-issuer=%s; "+
			"kind: a kubeadmConfigPatches entry for the ClusterConfiguration giving the apiServer the extra argument service-account-issuer=https://%s.example.com (at cluster creation); "+
			"k3d/k3s: --k3s-arg '--kube-apiserver-arg=service-account-issuer=https://%s.example.com@server:*'; "+
			"AKS: enable its OIDC issuer (az aks update --enable-oidc-issuer). Check it with `kubectl get --raw %s%s`",
			cluster, issuer, cluster, cluster, issuer, cluster, cluster, DiscoveryPath, contextFlag)
	}
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("the service-account issuer of %s is %q: another cluster's JWT authenticator needs an https URL without query, fragment or user; "+
			"give %s an issuer such as https://%s.example.com (kube-apiserver --service-account-issuer)", cluster, issuer, cluster, cluster)
	}
	return nil
}
