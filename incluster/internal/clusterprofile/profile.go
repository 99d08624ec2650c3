// Package clusterprofile publishes, when asked (--cluster-profiles-namespace), one ClusterProfile
// of sig-multicluster's cluster inventory (sigs.k8s.io/cluster-inventory-api, KEP-4322) per
// remote cluster the importer holds a credential for, so that the tools that find clusters there
// (multicluster-runtime, Kueue's MultiKueue, Argo CD, Headlamp) reach them through
// `kubectl mcsa credential` as their exec plugin (KEP-5339).
//
// This file is the pure core: what a profile says of a credential, and when its status may be
// written. The reconciler (reconciler.go) reads and writes.
package clusterprofile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	cpv1alpha1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// WriteInterval is the shortest time between two status writes of one profile: KEP-4322 asks
// cluster managers to update a profile's status at most this often, since every consumer
// watches every profile.
const WriteInterval = 30 * time.Second

// VersionInterval is how long a cluster's Kubernetes version is reused before it is read again:
// it changes with upgrades, not with tokens.
const VersionInterval = 10 * time.Minute

// Credential is what the publisher knows of a cluster credential: the import named after its
// remote cluster in the importer's namespace, and its secret.
type Credential struct {
	// Cluster is the remote cluster's name: the credential's name, and the profile's.
	Cluster string
	// Namespace is the credential's namespace (the importer's), for messages.
	Namespace string
	// Server and CAData are the remote API server's URL and CA bundle, from the secret.
	Server string
	CAData []byte
	// Ready is the credential's Ready condition. The publisher waits for it: the importer, in
	// the same process, reports within seconds, and a profile first published as Unknown would
	// then wait WriteInterval to say more.
	Ready metav1.Condition
	// Version is the remote cluster's Kubernetes version ("" unknown).
	Version string
}

// Managed tells whether the publisher manages p: it created it, or another writer named
// kubectl-mcsa its cluster manager. Of a profile that another cluster manager owns, the
// publisher writes only its access provider, never conditions or version, which are that
// manager's word on the cluster.
func Managed(p *cpv1alpha1.ClusterProfile) bool {
	return p == nil || p.Spec.ClusterManager.Name == v1alpha1.ClusterManagerName
}

// AccessProvider is the kubectl-mcsa access provider of c's cluster: its server and CA, and the
// exec extension naming the import that consumers read the token of, the one named after the
// cluster in their own namespace.
func AccessProvider(c Credential) (cpv1alpha1.AccessProvider, error) {
	ext, err := json.Marshal(v1alpha1.ExecClusterConfig{Import: c.Cluster})
	if err != nil {
		return cpv1alpha1.AccessProvider{}, err
	}
	return cpv1alpha1.AccessProvider{
		Name: v1alpha1.AccessProviderName,
		Cluster: clientcmdv1.Cluster{
			Server:                   c.Server,
			CertificateAuthorityData: c.CAData,
			Extensions:               []clientcmdv1.NamedExtension{{Name: v1alpha1.ExecExtensionKey, Extension: runtime.RawExtension{Raw: ext}}},
		},
	}, nil
}

// Healthy is the ControlPlaneHealthy condition of c's cluster: the credential's readiness (the
// importer renewed its token with B's API server, which answered), with the transition time
// observed on the profile kept while the status stays the same.
func Healthy(c Credential, observed []metav1.Condition, now time.Time) metav1.Condition {
	cond := metav1.Condition{
		Type:               cpv1alpha1.ClusterConditionControlPlaneHealthy,
		Status:             c.Ready.Status,
		Reason:             c.Ready.Reason,
		Message:            fmt.Sprintf("cluster credential %s/%s: %s", c.Namespace, c.Cluster, c.Ready.Message),
		LastTransitionTime: metav1.NewTime(now),
	}
	if old := meta.FindStatusCondition(observed, cond.Type); old != nil && old.Status == cond.Status {
		cond.LastTransitionTime = old.LastTransitionTime
	}
	return cond
}

// Status is what the publisher says in the status of observed (nil: not created yet) about c:
// its access provider, and, when it manages the profile, ControlPlaneHealthy and the version
// when known. Server-side apply merges it with what others wrote: accessProviders and
// conditions are maps keyed by name and type.
func Status(c Credential, observed *cpv1alpha1.ClusterProfile, now time.Time) (cpv1alpha1.ClusterProfileStatus, error) {
	ap, err := AccessProvider(c)
	if err != nil {
		return cpv1alpha1.ClusterProfileStatus{}, err
	}
	s := cpv1alpha1.ClusterProfileStatus{AccessProviders: []cpv1alpha1.AccessProvider{ap}}
	if !Managed(observed) {
		return s, nil
	}
	var conds []metav1.Condition
	if observed != nil {
		conds = observed.Status.Conditions
	}
	s.Conditions = []metav1.Condition{Healthy(c, conds, now)}
	s.Version.Kubernetes = c.Version
	return s, nil
}

// Current tells whether observed already says what want says; an unchanged status is never
// written again.
func Current(want cpv1alpha1.ClusterProfileStatus, observed *cpv1alpha1.ClusterProfile) bool {
	if observed == nil {
		return false
	}
	got := observed.Status
	for _, ap := range want.AccessProviders {
		if !hasAccessProvider(got.AccessProviders, ap) {
			return false
		}
	}
	for _, c := range want.Conditions {
		o := meta.FindStatusCondition(got.Conditions, c.Type)
		if o == nil || o.Status != c.Status || o.Reason != c.Reason || o.Message != c.Message {
			return false
		}
	}
	return want.Version.Kubernetes == "" || want.Version == got.Version
}

func hasAccessProvider(list []cpv1alpha1.AccessProvider, want cpv1alpha1.AccessProvider) bool {
	for _, ap := range list {
		if ap.Name != want.Name {
			continue
		}
		g, w := ap.Cluster, want.Cluster
		return g.Server == w.Server && bytes.Equal(g.CertificateAuthorityData, w.CertificateAuthorityData) && sameExtensions(g.Extensions, w.Extensions)
	}
	return false
}

// sameExtensions compares extensions by name and JSON value (the API server may reformat it).
func sameExtensions(a, b []clientcmdv1.NamedExtension) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !sameJSON(a[i].Extension.Raw, b[i].Extension.Raw) {
			return false
		}
	}
	return true
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// WriteDelay is how long a status write that is due must wait, given the last write of the
// same profile (zero: none since the publisher started): 0 to write now.
func WriteDelay(lastWrite, now time.Time) time.Duration {
	if lastWrite.IsZero() {
		return 0
	}
	if wait := lastWrite.Add(WriteInterval).Sub(now); wait > 0 {
		return wait
	}
	return 0
}

// VersionDue tells whether the cluster's version should be read again: never read, read for
// another server, or read VersionInterval ago.
func VersionDue(readAt time.Time, readFor, server string, now time.Time) bool {
	return readAt.IsZero() || readFor != server || now.Sub(readAt) >= VersionInterval
}
