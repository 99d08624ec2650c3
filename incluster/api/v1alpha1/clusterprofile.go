package v1alpha1

// The contract between the ClusterProfile publisher (incluster/internal/clusterprofile), which
// describes each remote cluster the importer has a credential for as a ClusterProfile of
// sig-multicluster's cluster inventory (sigs.k8s.io/cluster-inventory-api, KEP-4322), and
// `kubectl mcsa credential`, the exec plugin that consumers of those profiles run (KEP-5339).
const (
	// ClusterManagerName is the ClusterProfiles' spec.clusterManager.name and the value of
	// their x-k8s.io/cluster-manager label: kubectl-mcsa manages the profiles it publishes.
	ClusterManagerName = ManagedBy
	// AccessProviderName is the name of the access provider that the published profiles list
	// in status.accessProviders, and that consumers' provider files configure: the
	// `kubectl mcsa credential` exec plugin.
	AccessProviderName = ManagedBy
	// ExecExtensionKey is the kubeconfig cluster extension (and ClusterProfile access
	// provider extension) that client-go passes to exec plugins as spec.cluster.config in
	// KUBERNETES_EXEC_INFO, when provideClusterInfo is set. Its value is an ExecClusterConfig.
	ExecExtensionKey = "client.authentication.k8s.io/exec"
)

// ExecClusterConfig is the value of the ExecExtensionKey extension: which import the exec plugin
// reads the token of. Kubeconfigs written by `kubectl mcsa kubeconfig NAME --exec` name the
// import and its namespace; published ClusterProfiles name only the import, after the cluster
// (as the cluster credentials are), so that each consumer reads the import of that name in its
// own namespace: the one mounted into its pod, or the one in the namespace its plugin command
// line selects.
//
// +kubebuilder:object:generate=false
type ExecClusterConfig struct {
	Import    string `json:"import"`
	Namespace string `json:"namespace,omitempty"`
}
