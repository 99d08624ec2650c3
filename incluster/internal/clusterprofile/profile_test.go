package clusterprofile

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	cpv1alpha1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func cred(ready metav1.Condition) Credential {
	return Credential{Cluster: "cluster2", Namespace: v1alpha1.DefaultNamespace, Server: "https://cluster2:6443", CAData: []byte("CA"), Ready: ready, Version: "v1.37.2"}
}

func readyCond(status metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: msg}
}

func profile(manager string, st cpv1alpha1.ClusterProfileStatus) *cpv1alpha1.ClusterProfile {
	return &cpv1alpha1.ClusterProfile{Spec: cpv1alpha1.ClusterProfileSpec{ClusterManager: cpv1alpha1.ClusterManager{Name: manager}}, Status: st}
}

func TestAccessProviderNamesTheImportAfterTheCluster(t *testing.T) {
	ap, err := AccessProvider(cred(readyCond(metav1.ConditionTrue, v1alpha1.ReasonTokenIssued, "")))
	if err != nil {
		t.Fatal(err)
	}
	if ap.Name != v1alpha1.AccessProviderName || ap.Cluster.Server != "https://cluster2:6443" || string(ap.Cluster.CertificateAuthorityData) != "CA" {
		t.Errorf("access provider %+v", ap)
	}
	if len(ap.Cluster.Extensions) != 1 || ap.Cluster.Extensions[0].Name != v1alpha1.ExecExtensionKey {
		t.Fatalf("extensions %+v, want one %s", ap.Cluster.Extensions, v1alpha1.ExecExtensionKey)
	}
	var cc v1alpha1.ExecClusterConfig
	if err := json.Unmarshal(ap.Cluster.Extensions[0].Extension.Raw, &cc); err != nil || cc != (v1alpha1.ExecClusterConfig{Import: "cluster2"}) {
		t.Errorf("extension %s (%v), want the import named after the cluster, no namespace", ap.Cluster.Extensions[0].Extension.Raw, err)
	}
}

func TestHealthy(t *testing.T) {
	earlier := metav1.NewTime(t0.Add(-time.Hour))
	observedTrue := []metav1.Condition{{Type: cpv1alpha1.ClusterConditionControlPlaneHealthy, Status: metav1.ConditionTrue, LastTransitionTime: earlier}}
	for _, tc := range []struct {
		name       string
		ready      metav1.Condition
		observed   []metav1.Condition
		wantStatus metav1.ConditionStatus
		wantReason string
		wantSince  time.Time
		wantInMsg  string
	}{
		{"ready", readyCond(metav1.ConditionTrue, v1alpha1.ReasonTokenIssued, "token issued"), nil, metav1.ConditionTrue, v1alpha1.ReasonTokenIssued, t0, "multicluster-service-account/cluster2: token issued"},
		{"still ready keeps the transition time", readyCond(metav1.ConditionTrue, v1alpha1.ReasonTokenIssued, ""), observedTrue, metav1.ConditionTrue, v1alpha1.ReasonTokenIssued, earlier.Time, ""},
		{"unreachable is a transition", readyCond(metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable, "dial tcp: refused"), observedTrue, metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable, t0, "dial tcp: refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Healthy(cred(tc.ready), tc.observed, t0)
			if c.Type != cpv1alpha1.ClusterConditionControlPlaneHealthy || c.Status != tc.wantStatus || c.Reason != tc.wantReason {
				t.Errorf("condition %+v, want %s %s", c, tc.wantStatus, tc.wantReason)
			}
			if !c.LastTransitionTime.Time.Equal(tc.wantSince) {
				t.Errorf("lastTransitionTime %s, want %s", c.LastTransitionTime, tc.wantSince)
			}
			if !strings.Contains(c.Message, tc.wantInMsg) {
				t.Errorf("message %q, want it to contain %q", c.Message, tc.wantInMsg)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	ready := readyCond(metav1.ConditionTrue, v1alpha1.ReasonTokenIssued, "ok")
	for _, tc := range []struct {
		name          string
		observed      *cpv1alpha1.ClusterProfile
		version       string
		wantCondition bool
		wantVersion   string
	}{
		{"new profile", nil, "v1.37.2", true, "v1.37.2"},
		{"ours", profile(v1alpha1.ClusterManagerName, cpv1alpha1.ClusterProfileStatus{}), "v1.37.2", true, "v1.37.2"},
		{"ours, version unknown", profile(v1alpha1.ClusterManagerName, cpv1alpha1.ClusterProfileStatus{}), "", true, ""},
		{"another manager's: only the access provider", profile("ocm", cpv1alpha1.ClusterProfileStatus{}), "v1.37.2", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cred(ready)
			c.Version = tc.version
			s, err := Status(c, tc.observed, t0)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.AccessProviders) != 1 || s.AccessProviders[0].Name != v1alpha1.AccessProviderName {
				t.Errorf("access providers %+v", s.AccessProviders)
			}
			if got := len(s.Conditions) == 1; got != tc.wantCondition {
				t.Errorf("conditions %+v, want one: %v", s.Conditions, tc.wantCondition)
			}
			if s.Version.Kubernetes != tc.wantVersion {
				t.Errorf("version %q, want %q", s.Version.Kubernetes, tc.wantVersion)
			}
		})
	}
}

func TestCurrent(t *testing.T) {
	c := cred(readyCond(metav1.ConditionTrue, v1alpha1.ReasonTokenIssued, "ok"))
	want, err := Status(c, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	other := cpv1alpha1.AccessProvider{Name: "ocm", Cluster: clientcmdv1.Cluster{Server: "https://elsewhere"}}
	// What the API server returns: the same, with others' entries and the extension reformatted.
	same := want.DeepCopy()
	same.AccessProviders = append([]cpv1alpha1.AccessProvider{other}, same.AccessProviders...)
	same.AccessProviders[1].Cluster.Extensions[0].Extension = runtime.RawExtension{Raw: []byte(`{ "import" : "cluster2" }`)}
	same.Conditions = append(same.Conditions, metav1.Condition{Type: "Joined", Status: metav1.ConditionTrue})
	mutate := func(f func(s *cpv1alpha1.ClusterProfileStatus)) *cpv1alpha1.ClusterProfile {
		s := want.DeepCopy()
		f(s)
		return profile(v1alpha1.ClusterManagerName, *s)
	}
	for _, tc := range []struct {
		name     string
		observed *cpv1alpha1.ClusterProfile
		want     bool
	}{
		{"absent", nil, false},
		{"the same, among others' fields", profile(v1alpha1.ClusterManagerName, *same), true},
		{"no access provider", mutate(func(s *cpv1alpha1.ClusterProfileStatus) { s.AccessProviders = []cpv1alpha1.AccessProvider{other} }), false},
		{"another server", mutate(func(s *cpv1alpha1.ClusterProfileStatus) { s.AccessProviders[0].Cluster.Server = "https://new:6443" }), false},
		{"another CA", mutate(func(s *cpv1alpha1.ClusterProfileStatus) {
			s.AccessProviders[0].Cluster.CertificateAuthorityData = []byte("CA2")
		}), false},
		{"another import", mutate(func(s *cpv1alpha1.ClusterProfileStatus) {
			s.AccessProviders[0].Cluster.Extensions[0].Extension.Raw = []byte(`{"import":"x"}`)
		}), false},
		{"unhealthy", mutate(func(s *cpv1alpha1.ClusterProfileStatus) { s.Conditions[0].Status = metav1.ConditionFalse }), false},
		{"another message", mutate(func(s *cpv1alpha1.ClusterProfileStatus) { s.Conditions[0].Message = "old" }), false},
		{"no condition", mutate(func(s *cpv1alpha1.ClusterProfileStatus) { s.Conditions = nil }), false},
		{"another version", mutate(func(s *cpv1alpha1.ClusterProfileStatus) { s.Version.Kubernetes = "v1.36.0" }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Current(want, tc.observed); got != tc.want {
				t.Errorf("Current = %v, want %v", got, tc.want)
			}
		})
	}
	// An unknown version is not a change: the last one known stays.
	unknown := want.DeepCopy()
	unknown.Version.Kubernetes = ""
	if !Current(*unknown, profile(v1alpha1.ClusterManagerName, want)) {
		t.Error("a status without a version differs from one with: the version would be withdrawn")
	}
}

func TestWriteDelay(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lastWrite time.Time
		want      time.Duration
	}{
		{"never written", time.Time{}, 0},
		{"just written", t0, WriteInterval},
		{"10 s ago", t0.Add(-10 * time.Second), 20 * time.Second},
		{"30 s ago", t0.Add(-WriteInterval), 0},
		{"long ago", t0.Add(-time.Hour), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := WriteDelay(tc.lastWrite, t0); got != tc.want {
				t.Errorf("WriteDelay = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestVersionDue(t *testing.T) {
	const server = "https://cluster2:6443"
	for _, tc := range []struct {
		name    string
		readAt  time.Time
		readFor string
		want    bool
	}{
		{"never read", time.Time{}, "", true},
		{"read just now", t0, server, false},
		{"read for another server", t0, "https://old:6443", true},
		{"read an interval ago", t0.Add(-VersionInterval), server, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := VersionDue(tc.readAt, tc.readFor, server, t0); got != tc.want {
				t.Errorf("VersionDue = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestManaged(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *cpv1alpha1.ClusterProfile
		want bool
	}{
		{"not created yet", nil, true},
		{"ours", profile(v1alpha1.ClusterManagerName, cpv1alpha1.ClusterProfileStatus{}), true},
		{"another manager's", profile("ocm", cpv1alpha1.ClusterProfileStatus{}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Managed(tc.p); got != tc.want {
				t.Errorf("Managed = %v, want %v", got, tc.want)
			}
		})
	}
}
