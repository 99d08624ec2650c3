package v1alpha1

import "strings"

// The contract of federated imports (ModeFederated) in the importing cluster A: what the
// importer writes, what the webhook mounts and what the client library reads. What the remote
// cluster B grants is in package incluster/grant (federation.go).

// KeyAs is the file, beside the keys of an import's secret, that names the remote identity a
// federated import's client acts as (`system:serviceaccount:NS:NAME` of B): the client
// authenticates with its own pod's token and impersonates that service account. The key is in
// the import's ConfigMap; a token import has no such file.
const KeyAs = "as"

// FederatedAudiencePrefix starts the audience of the pod tokens a federated import mounts.
const FederatedAudiencePrefix = "kubectl-mcsa.admiralty.io/"

// FederatedAudience is the audience of this cluster's service-account tokens meant for the
// remote cluster named cluster: B's JWT authenticator for A's issuer accepts that audience only,
// so a token a pod presents to B is refused by A itself and by any other cluster.
func FederatedAudience(cluster string) string { return FederatedAudiencePrefix + cluster }

// Lifetimes of the pod tokens of federated imports. B cannot revoke a token of A's issuer (only
// expiry ends it, and the kubelet replaces it at 80 % of its life), so they stay short.
const (
	DefaultFederatedExpirationSeconds = 3600
	MaxFederatedExpirationSeconds     = 3600
)

// FederatedExpirationSeconds is the lifetime of the pod tokens of a federated import.
func FederatedExpirationSeconds(imp *ServiceAccountImport) int64 {
	s := imp.Spec.ExpirationSeconds
	switch {
	case s == nil:
		return DefaultFederatedExpirationSeconds
	case *s > MaxFederatedExpirationSeconds:
		return MaxFederatedExpirationSeconds
	case *s < MinExpirationSeconds:
		return MinExpirationSeconds
	}
	return *s
}

// IsFederated tells whether imp is a federated import.
func IsFederated(imp *ServiceAccountImport) bool { return imp.Spec.Mode == ModeFederated }

const configMapSuffix = "-federated"

// FederatedConfigMapName is the ConfigMap the importer writes for a federated import: server,
// ca.crt, namespace, as, and a kubeconfig (config) reading the pod's token from the mount. Like
// SecretName, it is a valid object name for any valid import name, unique per import.
func FederatedConfigMapName(importName string) string {
	return suffixedName(importName, configMapSuffix)
}

// ServiceAccountUser is the user name of service account name of namespace.
func ServiceAccountUser(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// ParseServiceAccountUser splits a service account's user name into namespace and name.
func ParseServiceAccountUser(user string) (namespace, name string, ok bool) {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	return namespace, name, ok && namespace != "" && name != "" && !strings.Contains(name, ":")
}

// Ready reasons of federated imports: the chain from a pod of A to B's service account, link by
// link.
const (
	// ReasonFederated: B accepts A's tokens and B's RBAC lets the import's namespace act as the
	// service account.
	ReasonFederated = "Federated"
	// ReasonDiscoveryNotServed: A does not serve its issuer's discovery document to anonymous
	// callers, so B cannot fetch A's keys.
	ReasonDiscoveryNotServed = "DiscoveryNotServed"
	// ReasonIssuerNotTrusted: B refuses A's tokens: B has no JWT authenticator for A's issuer
	// and the import's audience, or has not loaded it yet.
	ReasonIssuerNotTrusted = "IssuerNotTrusted"
	// ReasonImpersonationNotAllowed: B's RBAC does not let the import's namespace of A act as
	// the service account.
	ReasonImpersonationNotAllowed = "ImpersonationNotAllowed"
)
