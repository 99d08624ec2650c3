package diagnose

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube/kubefake"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func ts(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }

func readyImport(name string, expires time.Duration) *v1alpha1.ServiceAccountImport {
	return &v1alpha1.ServiceAccountImport{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Generation: 1},
		Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: "pod-lister"},
		Status: v1alpha1.ServiceAccountImportStatus{
			Conditions:          []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonTokenIssued, ObservedGeneration: 1}},
			ExpirationTimestamp: ts(expires),
		},
	}
}

func forbidden(name string) *v1alpha1.ServiceAccountImport {
	s := readyImport(name, 0)
	s.Status = v1alpha1.ServiceAccountImportStatus{Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: v1alpha1.ReasonForbidden, Message: "cluster2 has not granted it", ObservedGeneration: 1}}}
	return s
}

// silent is an import the importer has not reported on.
func silent(name string) *v1alpha1.ServiceAccountImport {
	s := readyImport(name, time.Hour)
	s.Status.Conditions = nil
	return s
}

// x is the import the tests ask for.
const x = "cluster2-default-pod-lister"

// importSecret is the secret of import x.
func importSecret() *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SecretName(x), Namespace: "default"}}
}

// mutated is a pod asking for imports, as the webhook mutates it: a volume per import mounted
// in every container.
func mutated(imports ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", CreationTimestamp: *ts(-time.Minute),
		Annotations: map[string]string{v1alpha1.ImportNameKey: strings.Join(imports, ",")}}}
	p.Spec.InitContainers = []corev1.Container{{Name: "setup"}}
	p.Spec.Containers = []corev1.Container{{Name: "main"}, {Name: "sidecar"}}
	for _, name := range imports {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: v1alpha1.VolumeName(name),
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: v1alpha1.SecretName(name)}}})
		m := corev1.VolumeMount{Name: v1alpha1.VolumeName(name), MountPath: v1alpha1.MountPath(name), ReadOnly: true}
		for i := range p.Spec.InitContainers {
			p.Spec.InitContainers[i].VolumeMounts = append(p.Spec.InitContainers[i].VolumeMounts, m)
		}
		for i := range p.Spec.Containers {
			p.Spec.Containers[i].VolumeMounts = append(p.Spec.Containers[i].VolumeMounts, m)
		}
	}
	return p
}

// federatedImport is import x in federated mode, Ready.
func federatedImport() *v1alpha1.ServiceAccountImport {
	s := readyImport(x, 0)
	s.Spec.Mode = v1alpha1.ModeFederated
	s.Status = v1alpha1.ServiceAccountImportStatus{Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonFederated, Message: "pods act as default/pod-lister of cluster2", ObservedGeneration: 1}}}
	return s
}

// importConfigMap is the ConfigMap of federated import x.
func importConfigMap() *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.FederatedConfigMapName(x), Namespace: "default"}}
}

// federatedVolume is the projected volume the webhook mounts for federated import x of cluster2.
func federatedVolume() corev1.Volume {
	return corev1.Volume{Name: v1alpha1.VolumeName(x), VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: v1alpha1.FederatedAudience("cluster2"), ExpirationSeconds: ptr.To[int64](3600), Path: v1alpha1.SecretKeyToken}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: v1alpha1.FederatedConfigMapName(x)}}},
		},
		DefaultMode: ptr.To[int32](0o644),
	}}}
}

// mutatedFederated is a pod asking for x, as the webhook mutates it for a federated import;
// edit changes the projected volume.
func mutatedFederated(edit func(*corev1.ProjectedVolumeSource)) *corev1.Pod {
	p := mutated(x)
	p.Spec.Volumes[0] = federatedVolume()
	if edit != nil {
		edit(p.Spec.Volumes[0].Projected)
	}
	return p
}

func TestMounts(t *testing.T) {
	webhook := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: manifests.WebhookConfiguration, CreationTimestamp: *ts(-time.Hour)}}
	tests := []struct {
		name     string
		pod      func() *corev1.Pod
		objs     []runtime.Object
		problems []string // "import: message → remedy"
	}{
		{name: "healthy", pod: func() *corev1.Pod { return mutated(x) },
			objs: []runtime.Object{readyImport(x, time.Hour), importSecret()}},
		{name: "a container lacks the mount", pod: func() *corev1.Pod {
			p := mutated(x)
			p.Spec.Containers[1].VolumeMounts = nil
			return p
		}, objs: []runtime.Object{readyImport(x, time.Hour), importSecret()},
			problems: []string{x + ": container sidecar lacks the mount at " + v1alpha1.MountPath(x) + " → recreate the pod so that the webhook mounts it in every container"}},
		{name: "an init container lacks the mount", pod: func() *corev1.Pod {
			p := mutated(x)
			p.Spec.InitContainers[0].VolumeMounts = nil
			return p
		}, objs: []runtime.Object{readyImport(x, time.Hour), importSecret()},
			problems: []string{x + ": init container setup lacks the mount at " + v1alpha1.MountPath(x) + " → recreate the pod so that the webhook mounts it in every container"}},
		{name: "import missing and not mounted", pod: func() *corev1.Pod {
			p := mutated()
			p.Annotations[v1alpha1.ImportNameKey] = "nope"
			return p
		}, problems: []string{
			"nope: import not found in namespace default → kubectl mcsa import nope --cluster CLUSTER --remote-namespace NAMESPACE --service-account NAME -n default --context cluster1",
			"nope: no volume: the webhook did not mount the import → check the webhook with `kubectl mcsa doctor --context cluster1`, then recreate the pod",
		}},
		{name: "pod older than the webhook", pod: func() *corev1.Pod {
			p := mutated()
			p.Annotations[v1alpha1.ImportNameKey] = x
			p.CreationTimestamp = *ts(-2 * time.Hour)
			return p
		}, objs: []runtime.Object{readyImport(x, time.Hour), importSecret(), webhook.DeepCopy()},
			problems: []string{x + ": no volume: the pod was created before the webhook was installed → recreate the pod (delete it if a controller manages it)"}},
		{name: "import not ready, secret not written", pod: func() *corev1.Pod { return mutated(x) },
			objs: []runtime.Object{forbidden(x)},
			problems: []string{
				x + ": import not ready: Forbidden: cluster2 has not granted it",
				x + ": secret " + v1alpha1.SecretName(x) + " not written yet: the kubelet waits for it and the pod cannot start → see why with `kubectl mcsa get " + x + " -n default -o wide --context cluster1`",
			}},
		{name: "importer silent", pod: func() *corev1.Pod { return mutated(x) },
			objs:     []runtime.Object{silent(x), importSecret()},
			problems: []string{x + ": the importer has not reported on the import → check the importer with `kubectl mcsa doctor --context cluster1`"}},
		{name: "token expired", pod: func() *corev1.Pod { return mutated(x) },
			objs:     []runtime.Object{readyImport(x, -5*time.Minute), importSecret()},
			problems: []string{x + ": token expired 5m ago → kubectl mcsa rotate " + x + " -n default --context cluster1 --wait"}},
		{name: "no annotation", pod: func() *corev1.Pod { p := mutated(); delete(p.Annotations, v1alpha1.ImportNameKey); return p },
			problems: []string{": the pod asks for no import → annotate its template with " + v1alpha1.ImportNameKey + ": IMPORT[,IMPORT…] and recreate it"}},
		{name: "invalid annotation", pod: func() *corev1.Pod { p := mutated(); p.Annotations[v1alpha1.ImportNameKey] = "other/x"; return p },
			problems: []string{`: annotation ` + v1alpha1.ImportNameKey + `: invalid ServiceAccountImport name(s) "other/x"`}},

		// Federated imports: a projected volume of the pod's token and the import's ConfigMap.
		{name: "federated, healthy", pod: func() *corev1.Pod { return mutatedFederated(nil) },
			objs: []runtime.Object{federatedImport(), importConfigMap()}},
		{name: "federated, the token's audience is another cluster's", pod: func() *corev1.Pod {
			return mutatedFederated(func(p *corev1.ProjectedVolumeSource) {
				p.Sources[0].ServiceAccountToken.Audience = v1alpha1.FederatedAudience("cluster3")
			})
		}, objs: []runtime.Object{federatedImport(), importConfigMap()},
			problems: []string{x + `: volume ` + v1alpha1.VolumeName(x) + `'s token has audience "kubectl-mcsa.admiralty.io/cluster3", not "kubectl-mcsa.admiralty.io/cluster2": cluster cluster2 refuses it → recreate the pod so that the webhook mounts the import as it is now`}},
		{name: "federated, ConfigMap missing", pod: func() *corev1.Pod { return mutatedFederated(nil) },
			objs:     []runtime.Object{federatedImport()},
			problems: []string{x + ": ConfigMap " + v1alpha1.FederatedConfigMapName(x) + " not written yet: the kubelet waits for it and the pod cannot start → see why with `kubectl mcsa get " + x + " -n default -o wide --context cluster1`"}},
		{name: "federated, the volume lacks the ConfigMap", pod: func() *corev1.Pod {
			return mutatedFederated(func(p *corev1.ProjectedVolumeSource) { p.Sources = p.Sources[:1] })
		}, objs: []runtime.Object{federatedImport(), importConfigMap()},
			problems: []string{x + ": volume " + v1alpha1.VolumeName(x) + " does not project ConfigMap " + v1alpha1.FederatedConfigMapName(x) + ": the pod lacks the remote server, CA, identity and kubeconfig → recreate the pod"}},
		{name: "federated, the volume lacks the token", pod: func() *corev1.Pod {
			return mutatedFederated(func(p *corev1.ProjectedVolumeSource) { p.Sources = p.Sources[1:] })
		}, objs: []runtime.Object{federatedImport(), importConfigMap()},
			problems: []string{x + ": volume " + v1alpha1.VolumeName(x) + " projects no service-account token: the pod cannot authenticate to the remote cluster → recreate the pod"}},
		{name: "federated, the token elsewhere", pod: func() *corev1.Pod {
			return mutatedFederated(func(p *corev1.ProjectedVolumeSource) { p.Sources[0].ServiceAccountToken.Path = "jwt" })
		}, objs: []runtime.Object{federatedImport(), importConfigMap()},
			problems: []string{x + ": volume " + v1alpha1.VolumeName(x) + " puts the token at jwt, not token: clients do not find it → recreate the pod"}},
		{name: "federated, not ready", pod: func() *corev1.Pod { return mutatedFederated(nil) },
			objs: []runtime.Object{func() runtime.Object {
				s := federatedImport()
				s.Status.Conditions[0].Status, s.Status.Conditions[0].Reason = metav1.ConditionFalse, v1alpha1.ReasonIssuerNotTrusted
				s.Status.Conditions[0].Message = "Cluster cluster2 refuses this cluster's service-account tokens. Run `kubectl mcsa federate cluster1 cluster2`."
				return s
			}(), importConfigMap()},
			problems: []string{x + ": import not ready: IssuerNotTrusted: Cluster cluster2 refuses this cluster's service-account tokens. Run `kubectl mcsa federate cluster1 cluster2`."}},
		{name: "federated, the pod mounts a secret", pod: func() *corev1.Pod { return mutated(x) },
			objs:     []runtime.Object{federatedImport(), importConfigMap()},
			problems: []string{x + ": volume " + v1alpha1.VolumeName(x) + " mounts secret " + v1alpha1.SecretName(x) + ", as for a token import, but the import is federated and has no secret: the pod lacks its token for the remote cluster → recreate the pod"}},
		{name: "federated, not mounted", pod: func() *corev1.Pod {
			p := mutated()
			p.Annotations[v1alpha1.ImportNameKey] = x
			return p
		}, objs: []runtime.Object{federatedImport(), importConfigMap()},
			problems: []string{x + ": no volume: the webhook did not mount the import → check the webhook"}},
		{name: "token import, the pod mounts a projected volume", pod: func() *corev1.Pod { return mutatedFederated(nil) },
			objs:     []runtime.Object{readyImport(x, time.Hour), importSecret()},
			problems: []string{x + ": volume " + v1alpha1.VolumeName(x) + " is a federated import's projected volume, but the import is a token import: the pod lacks its token → recreate the pod"}},
		{name: "federated volume, import missing", pod: func() *corev1.Pod { return mutatedFederated(nil) },
			problems: []string{x + ": import not found in namespace default → kubectl mcsa import"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := kubefake.New("cluster1")
			c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, tt.pod())
			c.Add(tt.objs...)
			r, err := Mounts(context.Background(), c.Clients(), "default", "p", now)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range r.Problems {
				s := p.Import + ": " + p.Message
				if p.Remedy != "" {
					s += " → " + p.Remedy
				}
				got = append(got, s)
			}
			if len(got) != len(tt.problems) {
				t.Fatalf("problems:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.problems, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.problems[i]) {
					t.Errorf("problem %d:\n%s\nwant\n%s", i, got[i], tt.problems[i])
				}
			}
		})
	}
}

func TestMountsReport(t *testing.T) {
	c := kubefake.New("cluster1")
	pod := mutated(x, "nope")
	pod.Spec.Containers[1].VolumeMounts = pod.Spec.Containers[1].VolumeMounts[:1]
	c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, pod, readyImport(x, 42*time.Minute), importSecret())
	r, err := Mounts(context.Background(), c.Clients(), "default", "p", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Imports) != 2 {
		t.Fatalf("imports %+v", r.Imports)
	}
	im := r.Imports[0]
	if im.Name != x || im.Mode != string(v1alpha1.ModeToken) || im.ConfigMap != "" || !im.Exists || im.Ready != "True" || im.Reason != v1alpha1.ReasonTokenIssued || !im.Expires.Equal(now.Add(42*time.Minute)) ||
		!im.SecretPresent || im.Volume != v1alpha1.VolumeName(x) || im.Path != v1alpha1.MountPath(x) {
		t.Errorf("report of %s: %+v", x, im)
	}
	var mounted []string
	for _, cm := range im.Containers {
		if cm.Mounted && cm.ReadOnly {
			mounted = append(mounted, cm.Name)
		}
	}
	if strings.Join(mounted, ",") != "setup,main,sidecar" {
		t.Errorf("%s mounted in %v", x, mounted)
	}
	nope := r.Imports[1]
	if nope.Exists || nope.SecretPresent || nope.Volume != v1alpha1.VolumeName("nope") || nope.Containers[2].Mounted {
		t.Errorf("report of nope: %+v", nope)
	}

	if _, err := Mounts(context.Background(), c.Clients(), "default", "ghost", now); !apierrors.IsNotFound(err) {
		t.Errorf("missing pod: %v", err)
	}
}

func TestMountsReportFederated(t *testing.T) {
	c := kubefake.New("cluster1")
	c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, mutatedFederated(nil), federatedImport(), importConfigMap(),
		importSecret()) // a secret of the same name, left over, is not the import's
	r, err := Mounts(context.Background(), c.Clients(), "default", "p", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Imports) != 1 || len(r.Problems) != 0 {
		t.Fatalf("report %+v", r)
	}
	im := r.Imports[0]
	if im.Mode != string(v1alpha1.ModeFederated) || !im.Exists || im.Ready != "True" || im.Reason != v1alpha1.ReasonFederated || im.Expires != nil ||
		im.Secret != "" || im.SecretPresent || im.ConfigMap != v1alpha1.FederatedConfigMapName(x) || !im.ConfigMapPresent ||
		im.Audience != v1alpha1.FederatedAudience("cluster2") || im.Volume != v1alpha1.VolumeName(x) || len(im.Containers) != 3 {
		t.Errorf("report of %s: %+v", x, im)
	}
	// JSON: the token import's fields stay, the federated ones are added.
	b, err := json.Marshal(im)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"mode":"Federated"`, `"secret":""`, `"secretPresent":false`, `"configMap":"` + v1alpha1.FederatedConfigMapName(x) + `"`, `"configMapPresent":true`, `"audience":"kubectl-mcsa.admiralty.io/cluster2"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	if strings.Contains(string(b), `"expires"`) {
		t.Errorf("JSON of a federated import with an expiry: %s", b)
	}
}
