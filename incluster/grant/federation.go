package grant

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// Federation (federated imports, v1alpha1.ModeFederated): cluster B trusts cluster A's
// service-account issuer with one JWT authenticator, which maps A's service account ns/sa to the
// user `A:system:serviceaccount:ns:sa` of B, in the groups `A:system:serviceaccounts` and
// `A:system:serviceaccounts:ns`. B's RBAC then lets those users or groups impersonate a named
// service account of B, and nothing else: no token of B is ever copied into A.

// FederatedUser is the user name B gives service account sa of namespace ns of cluster A.
func FederatedUser(importingCluster, namespace, serviceAccount string) string {
	return importingCluster + ":" + v1alpha1.ServiceAccountUser(namespace, serviceAccount)
}

// FederatedGroup is the group, in B, of the service accounts of namespace of A: every
// namespace of A if namespace is "".
func FederatedGroup(importingCluster, namespace string) string {
	if namespace == "" {
		return importingCluster + ":system:serviceaccounts"
	}
	return importingCluster + ":system:serviceaccounts:" + namespace
}

// MaxJWTAuthenticators is the most JWT authenticators an API server accepts in its
// AuthenticationConfiguration.
const MaxJWTAuthenticators = 64

// ClusterExtraKey is the user extra B's authenticator adds to A's users: A's name.
const ClusterExtraKey = v1alpha1.FederatedAudiencePrefix + "cluster"

// Issuer is what B needs to know of A's service-account issuer.
type Issuer struct {
	// URL is A's issuer (the `iss` of its tokens).
	URL string
	// DiscoveryURL is where B fetches A's discovery document: A's API server URL +
	// /.well-known/openid-configuration.
	DiscoveryURL string
	// CertificateAuthority is the PEM of the CA that B verifies A's discovery and JWKS
	// endpoints with.
	CertificateAuthority string
	// KeyIDs are the key IDs (kid) of A's JWKS, sorted: Authenticator names them in the message
	// of a validation rule, which changes nothing B checks but makes the entry change when A's
	// keys do. B does not fetch A's keys again by itself when it meets an unknown key ID
	// (kubernetes issue 139769); it rebuilds its authenticators, fetching A's keys, when its
	// configuration changes. Key IDs contain neither ", " nor ")" (kube-apiserver's are
	// unpadded URL-safe base64).
	KeyIDs []string
}

// userRuleMessage is the message of the authenticator's user validation rule; keysMarker
// introduces A's key IDs after it.
const (
	userRuleMessage = "federated users may not be system users"
	keysMarker      = "'s keys: "
)

// Authenticator is B's JWT authenticator for importingCluster's issuer: tokens with B's audience
// only, of service accounts only, mapped under the prefix `A:` so that none can pass as one of
// B's own users (`system:` names are refused). The user validation rule's message ends with
// A's key IDs, "(A's keys: kid1, kid2)", when issuer has any: the same key IDs render the same
// entry, byte for byte, and new ones a different entry, which B rebuilds.
func Authenticator(importingCluster, source string, issuer Issuer) apiserverv1.JWTAuthenticator {
	q := func(s string) string { return "'" + s + "'" } // cluster names are DNS labels: no quote to escape
	message := userRuleMessage
	if kids := sortedKeyIDs(issuer.KeyIDs); len(kids) > 0 {
		message += " (" + importingCluster + keysMarker + strings.Join(kids, ", ") + ")"
	}
	return apiserverv1.JWTAuthenticator{
		Issuer: apiserverv1.Issuer{
			URL:                  issuer.URL,
			DiscoveryURL:         ptr.To(issuer.DiscoveryURL),
			CertificateAuthority: issuer.CertificateAuthority,
			Audiences:            []string{v1alpha1.FederatedAudience(source)},
			AudienceMatchPolicy:  apiserverv1.AudienceMatchPolicyMatchAny,
		},
		ClaimValidationRules: []apiserverv1.ClaimValidationRule{{
			Expression: "claims.sub.startsWith('system:serviceaccount:')",
			Message:    "only service accounts of " + importingCluster + " are federated",
		}},
		ClaimMappings: apiserverv1.ClaimMappings{
			Username: apiserverv1.PrefixedClaimOrExpression{Expression: q(importingCluster+":") + " + claims.sub"},
			Groups: apiserverv1.PrefixedClaimOrExpression{Expression: "[" + q(FederatedGroup(importingCluster, "")) + ", " +
				q(FederatedGroup(importingCluster, "")+":") + " + claims['kubernetes.io'].namespace]"},
			Extra: []apiserverv1.ExtraMapping{{Key: ClusterExtraKey, ValueExpression: q(importingCluster)}},
		},
		UserValidationRules: []apiserverv1.UserValidationRule{{
			Expression: "!user.username.startsWith('system:')",
			Message:    message,
		}},
	}
}

func sortedKeyIDs(kids []string) []string {
	kids = slices.DeleteFunc(slices.Clone(kids), func(k string) bool { return k == "" })
	slices.Sort(kids)
	return slices.Compact(kids)
}

// AuthenticatorKeyIDs are the key IDs of A that an entry rendered by Authenticator names, nil
// when it names none (an entry rendered without them, or not by Authenticator).
func AuthenticatorKeyIDs(a apiserverv1.JWTAuthenticator) []string {
	for _, r := range a.UserValidationRules {
		rest, ok := strings.CutPrefix(r.Message, userRuleMessage+" (")
		if !ok {
			continue
		}
		_, list, found := strings.Cut(rest, keysMarker)
		if !found {
			continue
		}
		if list, ok = strings.CutSuffix(list, ")"); ok && list != "" {
			return strings.Split(list, ", ")
		}
	}
	return nil
}

// SetAuthenticator puts a into cfg, replacing the authenticator of the same issuer URL. It
// refuses a configuration that would exceed MaxJWTAuthenticators or give two authenticators
// the same discovery URL, which the API server would reject.
func SetAuthenticator(cfg *apiserverv1.AuthenticationConfiguration, a apiserverv1.JWTAuthenticator) error {
	i := slices.IndexFunc(cfg.JWT, func(j apiserverv1.JWTAuthenticator) bool { return j.Issuer.URL == a.Issuer.URL })
	for k, j := range cfg.JWT {
		if d := ptr.Deref(a.Issuer.DiscoveryURL, ""); k != i && d != "" && ptr.Deref(j.Issuer.DiscoveryURL, "") == d {
			return fmt.Errorf("issuer %s: discovery URL %s is already that of issuer %s", a.Issuer.URL, d, j.Issuer.URL)
		}
	}
	if i >= 0 {
		cfg.JWT[i] = a
		return nil
	}
	if len(cfg.JWT) >= MaxJWTAuthenticators {
		return fmt.Errorf("the authentication configuration already has %d JWT authenticators, the most an API server accepts: remove one (kubectl mcsa unfederate)", len(cfg.JWT))
	}
	cfg.JWT = append(cfg.JWT, a)
	return nil
}

// RemoveAuthenticator removes the authenticator of issuer from cfg, telling whether there was one.
func RemoveAuthenticator(cfg *apiserverv1.AuthenticationConfiguration, issuer string) bool {
	n := len(cfg.JWT)
	cfg.JWT = slices.DeleteFunc(cfg.JWT, func(j apiserverv1.JWTAuthenticator) bool { return j.Issuer.URL == issuer })
	return len(cfg.JWT) != n
}

// Names of what federation writes.
const (
	federatedPrefix      = "mcsa-federated:"
	federatedCheckPrefix = "mcsa-federated-check:"
	// DiscoveryBindingName is the ClusterRoleBinding of A that lets anonymous callers (B) read
	// A's issuer discovery document and keys, and nothing else.
	DiscoveryBindingName = "mcsa-service-account-issuer-discovery"
	// discoveryRole is Kubernetes' own ClusterRole for those two paths.
	discoveryRole = "system:service-account-issuer-discovery"
)

// DiscoveryBinding is A's ClusterRoleBinding serving its issuer discovery anonymously.
func DiscoveryBinding() *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: DiscoveryBindingName, Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: discoveryRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:unauthenticated"}},
	}
}

// The verbs of constrained impersonation (ConstrainedImpersonation, beta and on by default
// since Kubernetes 1.36): whom one may impersonate, and what one may do while impersonating.
const (
	ImpersonateServiceAccountVerb = "impersonate:serviceaccount"
	impersonateOnPrefix           = "impersonate-on:serviceaccount:"
	// ImpersonationGroup is the API group of constrained impersonation's resources.
	ImpersonationGroup = "authentication.k8s.io"
)

// ImpersonateOnVerb is the verb that lets an impersonator of a service account use verb.
func ImpersonateOnVerb(verb string) string { return impersonateOnPrefix + verb }

// StandardVerbs are the API verbs a federated grant allows by default: the service account's
// own RBAC still decides what it may do.
func StandardVerbs() []string {
	return []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
}

// FederatedGrant is what `allow --federated` grants in B: the service accounts of Namespaces
// of A (all of A's if empty) may act as service account ServiceAccount of namespace Namespace
// of B, for Verbs on Resources only.
type FederatedGrant struct {
	ImportingCluster, Namespace, ServiceAccount string
	// IntoNamespaces are the namespaces of A granted; empty: all.
	IntoNamespaces []string
	// Verbs (default StandardVerbs) on Resources (`group/resource` or `resource` of the core
	// group; default all) are what the impersonation may be used for.
	Verbs, Resources []string
	// Unconstrained grants the legacy `impersonate` verb instead (servers without
	// ConstrainedImpersonation): everything the service account may do.
	Unconstrained bool
}

// FederatedName names the Role, RoleBinding, ClusterRole and ClusterRoleBinding of a
// federated grant.
func FederatedName(importingCluster, namespace, serviceAccount string) string {
	return federatedPrefix + importingCluster + ":" + namespace + ":" + serviceAccount
}

// Subjects are the groups of A a grant is for.
func (g FederatedGrant) Subjects() []rbacv1.Subject {
	into := slices.Clone(g.IntoNamespaces)
	slices.Sort(into)
	into = slices.Compact(into)
	if len(into) == 0 {
		into = []string{""}
	}
	subjects := make([]rbacv1.Subject, 0, len(into))
	for _, ns := range into {
		subjects = append(subjects, rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: FederatedGroup(g.ImportingCluster, ns)})
	}
	return subjects
}

// Objects are the RBAC objects of the grant: a Role and RoleBinding in the service account's
// namespace (whom to impersonate) and, with constrained impersonation, a ClusterRole and
// ClusterRoleBinding (what for: the service account's own RBAC may reach other namespaces).
func (g FederatedGrant) Objects() ([]any, error) {
	if g.ImportingCluster == "" || g.Namespace == "" || g.ServiceAccount == "" {
		return nil, errors.New("grant: a federated grant names the importing cluster and a service account")
	}
	if g.Namespace == Namespace {
		return nil, fmt.Errorf("grant: service accounts of namespace %s are importer identities and are never federated", Namespace)
	}
	name := FederatedName(g.ImportingCluster, g.Namespace, g.ServiceAccount)
	who := rbacv1.PolicyRule{APIGroups: []string{ImpersonationGroup}, Resources: []string{"serviceaccounts"},
		Verbs: []string{ImpersonateServiceAccountVerb}, ResourceNames: []string{g.ServiceAccount}}
	if g.Unconstrained {
		who = rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"serviceaccounts"},
			Verbs: []string{"impersonate"}, ResourceNames: []string{g.ServiceAccount}}
	}
	r := role(g.Namespace, name, g.ImportingCluster, []rbacv1.PolicyRule{who})
	rb := roleBinding(g.Namespace, name, g.ImportingCluster)
	rb.Subjects = g.Subjects()
	objs := []any{r, rb}
	if g.Unconstrained {
		return objs, nil
	}
	rules, err := g.impersonateOnRules()
	if err != nil {
		return nil, err
	}
	objs = append(objs,
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: Labels(g.ImportingCluster)},
			Rules:      rules,
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: Labels(g.ImportingCluster)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   g.Subjects(),
		})
	return objs, nil
}

func (g FederatedGrant) impersonateOnRules() ([]rbacv1.PolicyRule, error) {
	verbs := g.Verbs
	if len(verbs) == 0 {
		verbs = StandardVerbs()
	}
	onVerbs := make([]string, 0, len(verbs))
	for _, v := range verbs {
		if v == "" || v == "*" || strings.ContainsAny(v, ": ") {
			return nil, fmt.Errorf("grant: verb %q: name API verbs such as get or list", v)
		}
		onVerbs = append(onVerbs, ImpersonateOnVerb(v))
	}
	if len(g.Resources) == 0 {
		return []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: onVerbs}}, nil
	}
	byGroup := map[string][]string{}
	var groups []string
	for _, gr := range g.Resources {
		group, resource, found := strings.Cut(gr, "/")
		if !found {
			group, resource = "", gr
		}
		if resource == "" || strings.Contains(resource, "/") {
			return nil, fmt.Errorf("grant: resource %q: give RESOURCE or GROUP/RESOURCE, e.g. pods or apps/deployments", gr)
		}
		if _, ok := byGroup[group]; !ok {
			groups = append(groups, group)
		}
		byGroup[group] = append(byGroup[group], resource)
	}
	rules := make([]rbacv1.PolicyRule, 0, len(groups))
	for _, group := range groups {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{group}, Resources: byGroup[group], Verbs: slices.Clone(onVerbs)})
	}
	return rules, nil
}

// FederatedCheckName names the Role and RoleBinding, in a namespace of B holding federated
// service accounts, that let A's importer check the grants there.
func FederatedCheckName(importingCluster string) string {
	return federatedCheckPrefix + importingCluster
}

// FederatedCheck lets A's importer (its federated user importerUser, FederatedUser of its
// service account) ask B whether a namespace of A may act as a service account of namespace:
// LocalSubjectAccessReviews there, nothing else. The importer reports the answer in the
// import's status; B's RBAC alone decides.
func FederatedCheck(importingCluster, namespace, importerUser string) (*rbacv1.Role, *rbacv1.RoleBinding) {
	name := FederatedCheckName(importingCluster)
	r := role(namespace, name, importingCluster, []rbacv1.PolicyRule{{
		APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"localsubjectaccessreviews"}, Verbs: []string{"create"},
	}})
	rb := roleBinding(namespace, name, importingCluster)
	rb.Subjects = []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: importerUser}}
	return r, rb
}

// FederateCommand makes target trust source's issuer (run against both clusters).
func FederateCommand(source, target string) string {
	return "kubectl mcsa federate " + source + " " + target
}

// AllowFederatedCommand grants namespace into of importingCluster the service account.
func AllowFederatedCommand(importingCluster, source, namespace, serviceAccount, into string) string {
	return "kubectl mcsa allow " + importingCluster + " " + namespace + "/" + serviceAccount +
		" --federated --into-namespaces " + into + " --context " + source
}
