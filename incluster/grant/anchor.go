package grant

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// Anchors. Every token the importer of A mints in B is bound (TokenRequest boundObjectRef) to an
// anchor: an empty Secret of B, in the service account's namespace, one per importing cluster and
// service account, that B's side owns. Deleting it revokes every token bound to it within the API
// server's token cache (10 s); recreating it (a new UID) does not revive them. Anchors carry no
// finalizer, which would keep their tokens valid while deletion waits on it.

const (
	anchorPrefix  = "mcsa-anchor."
	maxSecretName = 253 // DNS-1123 subdomain
	anchorHashLen = 10
)

// AnchorName is the name of the anchor of importingCluster's tokens of serviceAccount (in the
// service account's namespace). importingCluster is a DNS-1123 label, so it holds no '.' and the
// first '.' after the prefix separates it from the service account: two pairs never share a
// readable name. Pairs too long for it get a truncated form of exactly 253 characters (a length the
// readable form never reaches) ending in a hash of the pair. Every result is a valid Secret name.
func AnchorName(importingCluster, serviceAccount string) string {
	name := anchorPrefix + importingCluster + "." + serviceAccount
	if len(name) < maxSecretName {
		return name
	}
	sum := sha256.Sum256([]byte(importingCluster + "/" + serviceAccount))
	keep := maxSecretName - anchorHashLen - 1
	truncated := name[:keep]
	// A DNS-1123 subdomain's labels end alphanumeric: replace trailing '.' and '-' so the length
	// stays exact.
	trimmed := strings.TrimRight(truncated, ".-")
	return trimmed + strings.Repeat("x", len(truncated)-len(trimmed)) + "-" + hex.EncodeToString(sum[:])[:anchorHashLen]
}

// Anchor is the anchor of importingCluster's tokens of service account namespace/serviceAccount:
// no data, the grant labels, the service account named by an annotation, no finalizer.
func Anchor(importingCluster, namespace, serviceAccount string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name: AnchorName(importingCluster, serviceAccount), Namespace: namespace, Labels: Labels(importingCluster),
			Annotations: map[string]string{v1alpha1.AnchorServiceAccountAnnotation: serviceAccount},
		},
		Type: corev1.SecretTypeOpaque,
	}
}

// ClusterCredentialAnchor is the anchor of the tokens of A's importer identity (bootstrap's
// cluster credential): deleting it cuts A off from B until bootstrap runs again.
func ClusterCredentialAnchor(importingCluster string) *corev1.Secret {
	return Anchor(importingCluster, Namespace, ServiceAccountName(importingCluster))
}

// AnchorServiceAccount is the service account an anchor is for, "" if s is not an anchor of
// importingCluster.
func AnchorServiceAccount(s metav1.Object, importingCluster string) string {
	sa := s.GetAnnotations()[v1alpha1.AnchorServiceAccountAnnotation]
	if sa == "" || s.GetLabels()[v1alpha1.ImportingClusterLabel] != importingCluster || s.GetName() != AnchorName(importingCluster, sa) {
		return ""
	}
	return sa
}

// BoundObjectRef binds a TokenRequest's token to the anchor of importingCluster's tokens of
// serviceAccount, by name only: the API server looks the anchor up (404 when it is missing) and
// records its UID in the token.
func BoundObjectRef(importingCluster, serviceAccount string) *authenticationv1.BoundObjectReference {
	return &authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: AnchorName(importingCluster, serviceAccount)}
}
