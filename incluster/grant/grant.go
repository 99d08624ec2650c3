// Package grant defines the shape of what cluster B grants to an importing cluster A: the
// importer's identity in B, the RBAC that lets it renew its own token, read B's published CA
// bundle and import named service accounts (or, explicitly, whole namespaces), the annotation restricting which namespaces of A
// may import a service account, and the plugin commands that write them. The importer and the
// plugin both use it, so that what one writes is what the other expects.
//
// Grants never include reading secrets: the importer mints tokens with the TokenRequest API.
package grant

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// Namespace is the namespace of B holding the importers' identities, one service account per
// importing cluster.
const Namespace = v1alpha1.DefaultNamespace

// SystemNamespaces are Kubernetes' own namespaces of B. Their service accounts run the control
// plane and its add-ons, and some hold cluster-admin-like rights: granting one of them as a
// whole hands the importing cluster B itself, so the plugin grants them namespace-wide only when
// told it understands the risk. A function, so that no caller can edit the list.
func SystemNamespaces() []string {
	return []string{metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease}
}

// IsSystemNamespace tells whether namespace is one of SystemNamespaces.
func IsSystemNamespace(namespace string) bool {
	return slices.Contains(SystemNamespaces(), namespace)
}

// Resources and verbs of grants.
const (
	tokenResource          = "serviceaccounts/token"
	serviceAccountResource = "serviceaccounts"
)

// Name prefixes of RBAC objects. Cluster names are DNS labels, so the ':' separator keeps names of
// different kinds and clusters distinct.
const (
	selfPrefix      = "mcsa-importer-self:"
	caReaderPrefix  = "mcsa-importer-ca:"
	importPrefix    = "mcsa-import:"
	namespacePrefix = "mcsa-import-namespace:"
	clusterPrefix   = "mcsa-import-all:"
)

// ServiceAccountName is the name of A's importer identity in B (in Namespace).
func ServiceAccountName(importingCluster string) string { return importingCluster }

// Username is the user name B authenticates A's importer as.
func Username(importingCluster string) string {
	return "system:serviceaccount:" + Namespace + ":" + ServiceAccountName(importingCluster)
}

// Labels are the labels of every grant for importingCluster.
func Labels(importingCluster string) map[string]string {
	return map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy, v1alpha1.ImportingClusterLabel: importingCluster}
}

// Selector selects every grant for importingCluster.
func Selector(importingCluster string) labels.Selector {
	return labels.SelectorFromSet(Labels(importingCluster))
}

// Subject is A's importer identity as an RBAC subject.
func Subject(importingCluster string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: Namespace, Name: ServiceAccountName(importingCluster)}
}

// ImporterNamespace is the namespace holding importer identities in B.
func ImporterNamespace() *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: Namespace, Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy}},
	}
}

// ImporterServiceAccount is A's importer identity in B.
func ImporterServiceAccount(importingCluster string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{
			Name: ServiceAccountName(importingCluster), Namespace: Namespace, Labels: Labels(importingCluster),
		},
	}
}

// SelfRenewName names the Role and RoleBinding (in Namespace) letting A's importer renew its own
// token, and nothing else.
func SelfRenewName(importingCluster string) string { return selfPrefix + importingCluster }

// SelfRenewRole allows creating tokens for A's importer identity only.
func SelfRenewRole(importingCluster string) *rbacv1.Role {
	return role(Namespace, SelfRenewName(importingCluster), importingCluster, []rbacv1.PolicyRule{{
		APIGroups:     []string{""},
		Resources:     []string{tokenResource},
		Verbs:         []string{"create"},
		ResourceNames: []string{ServiceAccountName(importingCluster)},
	}})
}

// SelfRenewRoleBinding binds SelfRenewRole to A's importer identity.
func SelfRenewRoleBinding(importingCluster string) *rbacv1.RoleBinding {
	return roleBinding(Namespace, SelfRenewName(importingCluster), importingCluster)
}

// RootCAConfigMap is the ConfigMap kube-controller-manager publishes in every namespace (its
// root-ca-certificate-publisher controller) holding, under RootCAKey, the CA bundle that
// clients of the API server should trust: during a rotation of the API server's serving CA, old
// and new. The importer reads it in Namespace to follow such rotations.
const (
	RootCAConfigMap = "kube-root-ca.crt"
	RootCAKey       = "ca.crt"
)

// CAReaderName names the Role and RoleBinding (in Namespace) letting A's importer read B's
// published CA bundle.
func CAReaderName(importingCluster string) string { return caReaderPrefix + importingCluster }

// CAReaderRole allows reading RootCAConfigMap in Namespace, and nothing else: what B publishes to
// every pod of that namespace anyway. With it the importer learns of a new serving CA of B
// before B serves with it, and adds it to the CA bundle of every import's secret; without it
// (a bootstrap that predates it) the importer keeps the CA bootstrap recorded.
func CAReaderRole(importingCluster string) *rbacv1.Role {
	return role(Namespace, CAReaderName(importingCluster), importingCluster, []rbacv1.PolicyRule{{
		APIGroups:     []string{""},
		Resources:     []string{"configmaps"},
		Verbs:         []string{"get"},
		ResourceNames: []string{RootCAConfigMap},
	}})
}

// CAReaderRoleBinding binds CAReaderRole to A's importer identity.
func CAReaderRoleBinding(importingCluster string) *rbacv1.RoleBinding {
	return roleBinding(Namespace, CAReaderName(importingCluster), importingCluster)
}

// ImportName names the Role and RoleBinding, in a namespace of B, that let A import named
// service accounts of that namespace.
func ImportName(importingCluster string) string { return importPrefix + importingCluster }

// ErrNoServiceAccounts is returned for a named grant without names: an empty resourceNames
// would grant the whole namespace.
var ErrNoServiceAccounts = errors.New("grant: no service account named; use the namespace-wide grant to allow a whole namespace")

// ImportRole lets A import the named service accounts of namespace: create their tokens and get
// them (the importer reads the allowed-importers annotation). Names are sorted and deduplicated.
func ImportRole(importingCluster, namespace string, serviceAccounts []string) (*rbacv1.Role, error) {
	names := slices.Clone(serviceAccounts)
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) == 0 || names[0] == "" {
		return nil, ErrNoServiceAccounts
	}
	return role(namespace, ImportName(importingCluster), importingCluster, importRules(names)), nil
}

// ImportRoleBinding binds ImportRole to A's importer identity.
func ImportRoleBinding(importingCluster, namespace string) *rbacv1.RoleBinding {
	return roleBinding(namespace, ImportName(importingCluster), importingCluster)
}

// ImportedServiceAccounts are the service accounts an ImportRole grants (nil for any other
// role). The plugin merges into and removes from it.
func ImportedServiceAccounts(r *rbacv1.Role) []string {
	if !strings.HasPrefix(r.Name, importPrefix) {
		return nil
	}
	var names []string
	for _, rule := range r.Rules {
		if slices.Contains(rule.Resources, tokenResource) {
			names = append(names, rule.ResourceNames...)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// NamespaceImportName names the Role and RoleBinding that let A import every service account of
// a namespace of B.
func NamespaceImportName(importingCluster string) string { return namespacePrefix + importingCluster }

// NamespaceImportRole lets A import every service account of namespace. It refuses Namespace,
// which holds the importer identities of every importing cluster.
func NamespaceImportRole(importingCluster, namespace string) (*rbacv1.Role, error) {
	if namespace == Namespace {
		return nil, fmt.Errorf("grant: namespace %s holds importer identities and cannot be granted as a whole", Namespace)
	}
	return role(namespace, NamespaceImportName(importingCluster), importingCluster, importRules(nil)), nil
}

// NamespaceImportRoleBinding binds NamespaceImportRole to A's importer identity.
func NamespaceImportRoleBinding(importingCluster, namespace string) *rbacv1.RoleBinding {
	return roleBinding(namespace, NamespaceImportName(importingCluster), importingCluster)
}

// ClusterImportName names the ClusterRole and ClusterRoleBinding that let A import any service
// account of B (`kubectl mcsa bootstrap --allow-all-service-accounts`).
func ClusterImportName(importingCluster string) string { return clusterPrefix + importingCluster }

// ClusterImportRole lets A import any service account of B, including privileged ones of
// kube-system: only for clusters trusting A as much as their own administrators.
func ClusterImportRole(importingCluster string) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: ClusterImportName(importingCluster), Labels: Labels(importingCluster)},
		Rules:      importRules(nil),
	}
}

// ClusterImportRoleBinding binds ClusterImportRole to A's importer identity.
func ClusterImportRoleBinding(importingCluster string) *rbacv1.ClusterRoleBinding {
	name := ClusterImportName(importingCluster)
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: Labels(importingCluster)},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{Subject(importingCluster)},
	}
}

// importRules allow minting tokens for, and reading, the named service accounts (any if names
// is nil), and reading the grants' token policies (ConfigMap PoliciesName).
func importRules(names []string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{tokenResource}, Verbs: []string{"create"}, ResourceNames: names},
		{APIGroups: []string{""}, Resources: []string{serviceAccountResource}, Verbs: []string{"get"}, ResourceNames: slices.Clone(names)},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}, ResourceNames: []string{PoliciesName}},
	}
}

func role(namespace, name, importingCluster string, rules []rbacv1.PolicyRule) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: Labels(importingCluster)},
		Rules:      rules,
	}
}

func roleBinding(namespace, name, importingCluster string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: Labels(importingCluster)},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{Subject(importingCluster)},
	}
}
