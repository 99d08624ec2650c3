package grant

import "strings"

// The plugin commands that write grants, as remedies in messages. Cluster B is addressed by
// `--context B`: bootstrap names clusters after their kubeconfig contexts by default.

// BootstrapCommand lets importingCluster import from source: importer identity and self-renew
// grant in source, cluster credential in importingCluster.
func BootstrapCommand(importingCluster, source string) string {
	return "kubectl mcsa bootstrap " + importingCluster + " " + source
}

// AllowCommand grants importingCluster the named service accounts of namespace in source.
func AllowCommand(importingCluster, source, namespace string, serviceAccounts ...string) string {
	var b strings.Builder
	b.WriteString("kubectl mcsa allow " + importingCluster)
	for _, sa := range serviceAccounts {
		b.WriteString(" " + namespace + "/" + sa)
	}
	b.WriteString(" --context " + source)
	return b.String()
}

// AllowIntoNamespacesCommand adds namespaces of importingCluster to a service account's
// allowed-importers annotation (and grants the service account if it was not yet).
func AllowIntoNamespacesCommand(importingCluster, source, namespace, serviceAccount string, into ...string) string {
	return "kubectl mcsa allow " + importingCluster + " " + namespace + "/" + serviceAccount +
		" --into-namespaces " + strings.Join(into, ",") + " --context " + source
}

// AllowNamespaceCommand grants importingCluster every service account of namespace in source.
func AllowNamespaceCommand(importingCluster, source, namespace string) string {
	return "kubectl mcsa allow " + importingCluster + " --namespace-wide " + namespace + " --context " + source
}
