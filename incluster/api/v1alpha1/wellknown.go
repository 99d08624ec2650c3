package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// The interface shared by the importer, the automount webhook, the client-config library and
// the plugin. The first four are the original project's and must not change.
const (
	// ImportNameKey is both the pod annotation that asks for imports (comma-separated names)
	// and the label on each import's secret (the import's name).
	ImportNameKey = "multicluster.admiralty.io/service-account-import.name"

	// MountPathRoot is where the automount webhook mounts each import's secret, in a folder
	// named after the import.
	MountPathRoot = "/var/run/secrets/admiralty.io/serviceaccountimports"

	// Keys of an import's secret.
	SecretKeyToken     = "token"
	SecretKeyCACert    = "ca.crt"
	SecretKeyNamespace = "namespace"
	SecretKeyServer    = "server"
	SecretKeyConfig    = "config"

	// RefreshRequestedAnnotation on an import asks the importer for an immediate refresh; any
	// new value triggers one, recorded in status.lastRefreshRequest.
	RefreshRequestedAnnotation = "multicluster.admiralty.io/refresh-requested"

	// DefaultNamespace is where the importer runs and keeps its cluster credentials: the
	// import named after each remote cluster.
	DefaultNamespace = "multicluster-service-account"
)

// Condition types and reasons of an import.
const (
	ConditionReady = "Ready"

	ReasonTokenIssued            = "TokenIssued"
	ReasonClusterUnknown         = "ClusterUnknown"
	ReasonClusterUnreachable     = "ClusterUnreachable"
	ReasonServiceAccountNotFound = "ServiceAccountNotFound"
	ReasonForbidden              = "Forbidden"
	ReasonNamespaceNotAllowed    = "NamespaceNotAllowed"
	ReasonInvalidSpec            = "InvalidSpec"
	ReasonSecretConflict         = "SecretConflict"
	ReasonPending                = "Pending"
)

const (
	secretSuffix  = "-token"
	maxObjectName = 253 // DNS-1123 subdomain
	maxLabel      = 63  // DNS-1123 label
	hashLen       = 10
)

// SecretName is the name of the secret holding an import's credentials. It is a valid object
// name for any valid import name, and two imports never share it: names short enough keep their
// readable `<import>-token` form (at most 252 characters); longer ones are truncated and hashed
// to exactly 253 characters, a length the readable form never reaches.
func SecretName(importName string) string {
	if len(importName)+len(secretSuffix) < maxObjectName {
		return importName + secretSuffix
	}
	keep := maxObjectName - len(secretSuffix) - hashLen - 1
	truncated := importName[:keep]
	// A name cannot end in '.' or '-': replace trailing ones so the length stays exact.
	trimmed := strings.TrimRight(truncated, ".-")
	return trimmed + strings.Repeat("x", len(truncated)-len(trimmed)) + "-" + hash(importName) + secretSuffix
}

// VolumeName is the name of the pod volume of an import's secret: a DNS-1123 label for any
// valid import name. Short import names without dots keep a readable `mcsa-<import>` form;
// others get a hashed form with the distinct prefix `mcsah-`, so two imports never collide.
func VolumeName(importName string) string {
	const short, hashed = "mcsa-", "mcsah-"
	if len(short)+len(importName) <= maxLabel && !strings.Contains(importName, ".") {
		return short + importName
	}
	keep := maxLabel - len(hashed) - hashLen - 1
	prefix := strings.ReplaceAll(importName, ".", "-")
	if len(prefix) > keep {
		prefix = prefix[:keep]
	}
	prefix = strings.TrimRight(prefix, "-")
	if prefix == "" {
		return hashed + hash(importName)
	}
	return hashed + prefix + "-" + hash(importName)
}

// MountPath is the folder where an import's secret is mounted in a container.
func MountPath(importName string) string {
	return MountPathRoot + "/" + importName
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:hashLen]
}
