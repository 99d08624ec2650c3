package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImportMode is how an import's pods authenticate to the remote cluster.
// +kubebuilder:validation:Enum=Token;Federated
type ImportMode string

const (
	// ModeToken is the default: the importer copies a short-lived token of the remote service
	// account into a secret of the import's namespace, and refreshes it.
	ModeToken ImportMode = "Token"
	// ModeFederated copies nothing. The remote cluster trusts this cluster's
	// service-account issuer (`kubectl mcsa federate`); each pod presents its own
	// kubelet-rotated service-account token, with the remote cluster as audience, and
	// impersonates the remote service account, which the remote cluster's RBAC allows per
	// namespace of this cluster (`kubectl mcsa allow --federated`). The importer writes a
	// ConfigMap (FederatedConfigMapName) and checks the chain.
	ModeFederated ImportMode = "Federated"
)

// ServiceAccountImportSpec names a service account of a remote cluster.
// +kubebuilder:validation:XValidation:rule="(has(oldSelf.mode) ? oldSelf.mode : 'Token') == (has(self.mode) ? self.mode : 'Token')",message="mode is immutable: delete the import and create it again"
type ServiceAccountImportSpec struct {
	// ClusterName is the name of the remote cluster, as given to `kubectl mcsa bootstrap`.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	ClusterName string `json:"clusterName"`

	// Namespace is the namespace of the remote service account.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace"`

	// Name is the name of the remote service account.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// ExpirationSeconds is the requested lifetime of the imported token. The remote API server
	// may shorten it. Defaults to the importer's --default-token-lifetime (one hour). At most a
	// day: a token outlives the grant it was issued under until it expires, so the schema keeps
	// that window bounded whatever the remote cluster's own maximum. For a federated import, it
	// is the lifetime of the pods' own tokens, at most an hour (default an hour): the remote
	// cluster cannot revoke them.
	// +optional
	// +kubebuilder:validation:Minimum=600
	// +kubebuilder:validation:Maximum=86400
	ExpirationSeconds *int64 `json:"expirationSeconds,omitempty"`

	// Mode selects how pods authenticate: Token (the default) or Federated. Immutable.
	// +optional
	Mode ImportMode `json:"mode,omitempty"`

	// Audiences are the intended audiences of the imported token. Defaults to the remote API
	// server's own audiences. Not used by federated imports, whose audience is
	// FederatedAudience.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	Audiences []string `json:"audiences,omitempty"`
}

// ServiceAccountImportStatus is the state of an import, written by the importer.
type ServiceAccountImportStatus struct {
	// ObservedGeneration is the generation of the spec that the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions hold the import's state; Ready summarizes it.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Secrets references the local secret holding the imported credentials. It is a list for
	// compatibility with the original API; the importer keeps exactly one.
	// +optional
	// +listType=atomic
	Secrets []corev1.ObjectReference `json:"secrets,omitempty"`

	// ExpirationTimestamp is when the current token expires, as the remote API server granted it.
	// With LastRefreshTime and TokenGeneration it is the importer's refresh schedule: kept in the
	// status, which only the importer writes, rather than on the secret, which whoever may edit
	// secrets in the namespace could change.
	// +optional
	ExpirationTimestamp *metav1.Time `json:"expirationTimestamp,omitempty"`

	// LastRefreshTime is when the current token was issued.
	// +optional
	LastRefreshTime *metav1.Time `json:"lastRefreshTime,omitempty"`

	// TokenGeneration is the generation of the spec the current token was issued for: a new
	// spec gets a new token.
	// +optional
	TokenGeneration int64 `json:"tokenGeneration,omitempty"`

	// LastRefreshRequest is the value of the refresh-requested annotation that the importer
	// last acted upon.
	// +optional
	LastRefreshRequest string `json:"lastRefreshRequest,omitempty"`
}

// ServiceAccountImport asks the importer to keep, in its namespace, a secret holding a
// short-lived token of a service account of a remote cluster.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sai,categories=mcsa
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.clusterName`
// +kubebuilder:printcolumn:name="Remote-Namespace",type=string,JSONPath=`.spec.namespace`
// +kubebuilder:printcolumn:name="Remote-Name",type=string,JSONPath=`.spec.name`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expirationTimestamp`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ServiceAccountImport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ServiceAccountImportSpec   `json:"spec"`
	Status ServiceAccountImportStatus `json:"status,omitempty"`
}

// ServiceAccountImportList is a list of ServiceAccountImports.
//
// +kubebuilder:object:root=true
type ServiceAccountImportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceAccountImport `json:"items"`
}
