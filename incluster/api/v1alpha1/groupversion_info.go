// Package v1alpha1 holds the ServiceAccountImport API, group multicluster.admiralty.io, version
// v1alpha1. It keeps the original multicluster-service-account interface so that existing
// manifests apply unchanged, and adds token lifetime, audiences and conditions.
//
// +kubebuilder:object:generate=true
// +groupName=multicluster.admiralty.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const (
	// GroupName is the API group, the original project's.
	GroupName = "multicluster.admiralty.io"
	// ResourcePlural is the resource name of ServiceAccountImports in URLs and RBAC rules.
	ResourcePlural = "serviceaccountimports"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

	// SchemeBuilder registers this API's types with a scheme. It is apimachinery's builder, not
	// controller-runtime's, so that the plugin can use the types without the controller stack.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Resource is the group-qualified resource of ServiceAccountImports.
var Resource = GroupVersion.WithResource(ResourcePlural)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &ServiceAccountImport{}, &ServiceAccountImportList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
