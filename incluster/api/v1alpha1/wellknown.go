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

// Annotations of an import's secret in which earlier importers recorded the token's
// schedule. Whoever may edit secrets in the import's namespace could edit them too, and so
// postpone refreshes: the schedule is now in the import's status (lastRefreshTime,
// expirationTimestamp, tokenGeneration); the importer never reads these and removes them from
// the secrets it writes.
const (
	TokenIssuedAtAnnotation    = "multicluster.admiralty.io/token-issued-at"
	TokenExpiresAtAnnotation   = "multicluster.admiralty.io/token-expires-at"
	ImportGenerationAnnotation = "multicluster.admiralty.io/import-generation"
)

// SecretDigestAnnotation on an import's secret is a digest of what the importer wrote there
// besides the token (the other keys, type and label). The importer caches secrets as metadata
// only; this lets a restarted importer see, without reading every secret's data, that a
// secret is current. It decides nothing else: any other change to the secret while the importer
// runs makes it read the secret and rewrite what differs.
const SecretDigestAnnotation = "multicluster.admiralty.io/secret-digest"

// Labels and annotations of what `kubectl mcsa` writes in a remote cluster B (grants) and of
// the secrets `kubectl mcsa export` prints.
const (
	// ManagedByLabel marks every object kubectl-mcsa writes in B, with value ManagedBy.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "kubectl-mcsa"
	// ImportingClusterLabel names the importing cluster A a grant is for.
	ImportingClusterLabel = "multicluster.admiralty.io/importing-cluster"
	// AllowedImportersAnnotation on a service account of B restricts which namespaces of which
	// importing clusters may import it: `A/ns1,A/ns2,C/*` (grammar: package incluster/grant).
	// Without it, any namespace of a cluster granted the service account may import it.
	AllowedImportersAnnotation = "multicluster.admiralty.io/allowed-importers"

	// AnchorServiceAccountAnnotation on a grant's anchor (a Secret of B, package
	// incluster/grant) names the service account, of the anchor's namespace, whose imported
	// tokens are bound to it: deleting the anchor revokes every such token at once.
	AnchorServiceAccountAnnotation = "multicluster.admiralty.io/anchor-for-service-account"

	// ExportedFromAnnotation on an exported secret says `cluster/namespace/service account`.
	ExportedFromAnnotation = "multicluster.admiralty.io/exported-from"
	// TokenExpirationAnnotation on an exported secret says when its token expires (RFC 3339).
	TokenExpirationAnnotation = "multicluster.admiralty.io/token-expiration"
)

// RotateRequestedAnnotation on the webhook's serving-certificate Secret asks the controller for
// a new CA and certificate now; any new value triggers it.
const RotateRequestedAnnotation = "multicluster.admiralty.io/rotate-requested"

// IsClusterCredential tells whether imp is a cluster credential of an importer running in
// importerNamespace: the import named after its own remote cluster in that namespace. The
// importer renews it with its own token, and uses it to reach that cluster for every other
// import.
func IsClusterCredential(imp *ServiceAccountImport, importerNamespace string) bool {
	return imp.Namespace == importerNamespace && imp.Name == imp.Spec.ClusterName
}

// Bounds of spec.expirationSeconds, which the CRD's schema enforces too: the TokenRequest API's
// minimum, and a day, so that a token never outlives the grant it was issued under by more than
// that, whatever the remote cluster's own maximum.
const (
	MinExpirationSeconds = 600
	MaxExpirationSeconds = 86400
)

// The importer refreshes a token between these fractions of its lifetime (~80 %, spread so that
// imports created together do not refresh together), never before the first: a client that
// caches a token until then (`kubectl mcsa credential`'s expirationTimestamp) never holds one the
// importer has replaced.
const (
	RefreshFractionMin = 0.75
	RefreshFractionMax = 0.85
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
	// ReasonGrantAnchorMissing: the anchor Secret in B that the import's tokens are bound to,
	// or the grant's token policy, does not exist (the grant was disallowed, or predates anchors
	// or policies); the importer never falls back to an unbound or unlimited token.
	ReasonGrantAnchorMissing = "GrantAnchorMissing"
	// ReasonAudienceNotAllowed: the import asks for audiences its grant in B does not allow.
	ReasonAudienceNotAllowed = "AudienceNotAllowed"
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
func SecretName(importName string) string { return suffixedName(importName, secretSuffix) }

// suffixedName is importName+suffix when that is short enough, else importName truncated and
// hashed to exactly 253 characters ending with suffix (see SecretName).
func suffixedName(importName, suffix string) string {
	if len(importName)+len(suffix) < maxObjectName {
		return importName + suffix
	}
	keep := maxObjectName - len(suffix) - hashLen - 1
	truncated := importName[:keep]
	// A name cannot end in '.' or '-': replace trailing ones so the length stays exact.
	trimmed := strings.TrimRight(truncated, ".-")
	return trimmed + strings.Repeat("x", len(truncated)-len(trimmed)) + "-" + hash(importName) + suffix
}

// SecretLabelValue is the value of the ImportNameKey label on an import's secret: the import's
// name, as in the original project, when it fits in a label value (63 characters); a longer name
// is truncated and suffixed with a hash of it. The label selects secrets; ownership is decided
// by the owner reference alone.
func SecretLabelValue(importName string) string {
	if len(importName) <= maxLabel {
		return importName
	}
	// A label value ends with an alphanumeric character.
	prefix := strings.TrimRight(importName[:maxLabel-hashLen-1], ".-")
	return prefix + "-" + hash(importName)
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
