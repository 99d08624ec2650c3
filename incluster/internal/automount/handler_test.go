package automount

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// requestNamespace is the namespace of the pods of podRequest.
const requestNamespace = "team"

func testScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

func serviceAccountImport(ns, name string, conditions ...metav1.Condition) *v1alpha1.ServiceAccountImport {
	return &v1alpha1.ServiceAccountImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + ns + "-" + name)},
		Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: "pod-lister"},
		Status:     v1alpha1.ServiceAccountImportStatus{Conditions: conditions},
	}
}

// federatedImport is a federated import of cluster2 with the given token lifetime.
func federatedImport(name string, expiration *int64, conditions ...metav1.Condition) *v1alpha1.ServiceAccountImport {
	imp := serviceAccountImport(requestNamespace, name, conditions...)
	imp.Spec.Mode = v1alpha1.ModeFederated
	imp.Spec.ExpirationSeconds = expiration
	return imp
}

// importConfigMap is the ConfigMap the importer writes for federated import imp, owned by it.
func importConfigMap(imp *v1alpha1.ServiceAccountImport) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: imp.Namespace, Name: v1alpha1.FederatedConfigMapName(imp.Name),
		Labels: map[string]string{v1alpha1.ImportNameKey: v1alpha1.SecretLabelValue(imp.Name)}},
		Data: map[string]string{v1alpha1.SecretKeyServer: "https://cluster2.example:6443", v1alpha1.KeyAs: "system:serviceaccount:default:pod-lister"}}
	cm.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(imp, v1alpha1.GroupVersion.WithKind("ServiceAccountImport"))}
	return cm
}

// importSecret is the secret the importer writes for imp, owned by it.
func importSecret(imp *v1alpha1.ServiceAccountImport) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: imp.Namespace, Name: v1alpha1.SecretName(imp.Name),
		Labels: map[string]string{v1alpha1.ImportNameKey: imp.Name}}}
	s.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(imp, v1alpha1.GroupVersion.WithKind("ServiceAccountImport"))}
	return s
}

// podRequest is the admission request of a pod creation in namespace requestNamespace; the pod
// itself has no namespace, as when a controller creates it.
func podRequest(t testing.TB, pod *corev1.Pod) admission.Request {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "req",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: requestNamespace,
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: raw},
	}}
}

func annotated(value string) *corev1.Pod {
	pod := podWith([]string{"app"}, []string{"setup"}, nil)
	pod.GenerateName = "job-"
	pod.Annotations = map[string]string{v1alpha1.ImportNameKey: value}
	return pod
}

func newHandler(objs ...client.Object) *Handler {
	s := testScheme()
	return &Handler{Reader: fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build(), Decoder: admission.NewDecoder(s)}
}

func TestHandle(t *testing.T) {
	ready := serviceAccountImport("team", "ready")
	pending := serviceAccountImport("team", "pending", metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: v1alpha1.ReasonClusterUnreachable, Message: "dial tcp 10.0.0.1:443: connect: connection refused"})
	hijacked := serviceAccountImport("team", "hijacked")
	foreign := importSecret(hijacked)
	foreign.OwnerReferences = nil
	elsewhere := serviceAccountImport("other", "elsewhere")
	fed := federatedImport("fed", ptr.To[int64](1200))
	// A federated import mounts no secret: a foreign one of its secret name does not matter.
	fedStraySecret := importSecret(fed)
	fedStraySecret.OwnerReferences = nil
	fedPending := federatedImport("fed-pending", nil, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: v1alpha1.ReasonIssuerNotTrusted, Message: "cluster2 refuses this cluster's tokens"})
	fedHijacked := federatedImport("fed-hijacked", nil)
	foreignConfigMap := importConfigMap(fedHijacked)
	foreignConfigMap.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(ready, v1alpha1.GroupVersion.WithKind("ServiceAccountImport"))}
	// A token import's ConfigMap of the federated name is not read.
	readyStrayConfigMap := importConfigMap(ready)
	readyStrayConfigMap.OwnerReferences = nil
	objs := []client.Object{ready, importSecret(ready), pending, hijacked, foreign, elsewhere, importSecret(elsewhere),
		fed, importConfigMap(fed), fedStraySecret, fedPending, fedHijacked, foreignConfigMap, importSecret(fedHijacked), readyStrayConfigMap}

	for _, tc := range []struct {
		name string
		req  admission.Request
		// mounts are the imports expected mounted; nil with allowed means untouched.
		allowed bool
		mounts  []Mount
		// reason is the expected denial reason; contains, parts of the message or warnings.
		reason   string
		contains []string
		warnings []string
	}{
		{name: "no annotation", req: podRequest(t, podWith([]string{"app"}, nil, nil)), allowed: true},
		{name: "empty annotation", req: podRequest(t, annotated(" , ")), allowed: true},
		{name: "import with its secret", req: podRequest(t, annotated("ready")), allowed: true, mounts: tokens("ready")},
		{
			name: "import whose secret is not written yet", req: podRequest(t, annotated("ready, pending")),
			allowed: true, mounts: tokens("ready", "pending"),
			warnings: []string{`ServiceAccountImport "pending" has no secret "pending-token" yet`, "ClusterUnreachable: dial tcp"},
		},
		{
			name: "missing imports", req: podRequest(t, annotated("ready,gone,lost")), reason: DenyImportNotFound,
			contains: []string{`ServiceAccountImports "gone", "lost" not found in namespace "team"`,
				"kubectl mcsa import gone --cluster CLUSTER --remote-namespace NS --service-account SA -n team",
				"kubectl mcsa import lost --cluster"},
		},
		{
			name: "import of another namespace", req: podRequest(t, annotated("elsewhere")), reason: DenyImportNotFound,
			contains: []string{`ServiceAccountImport "elsewhere" not found in namespace "team"`},
		},
		{
			name: "namespace-qualified name", req: podRequest(t, annotated("other/elsewhere")), reason: DenyInvalidAnnotation,
			contains: []string{`"other/elsewhere"`, "own namespace"},
		},
		{
			name: "secret of the import's name not owned by it", req: podRequest(t, annotated("hijacked")), reason: DenySecretConflict,
			contains: []string{`secret "hijacked-token"`, "delete or rename that secret"},
		},
		{
			name: "conflicting volume",
			req: podRequest(t, func() *corev1.Pod {
				p := annotated("ready")
				p.Spec.Volumes = []corev1.Volume{{Name: "mcsa-ready", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
				return p
			}()),
			reason: DenyVolumeConflict, contains: []string{`volume named "mcsa-ready"`},
		},
		{name: "already mounted", req: podRequest(t, mounted(annotated("ready"), tokens("ready")...)), allowed: true},
		{name: "federated import with its ConfigMap", req: podRequest(t, annotated("fed")), allowed: true, mounts: []Mount{MountFor(fed)}},
		{
			name: "token and federated imports", req: podRequest(t, annotated("ready,fed,fed-pending")),
			allowed: true, mounts: []Mount{MountFor(ready), MountFor(fed), MountFor(fedPending)},
			warnings: []string{`ServiceAccountImport "fed-pending" has no ConfigMap "fed-pending-federated" yet: the pod starts once the importer writes it`,
				"IssuerNotTrusted: cluster2 refuses"},
		},
		{
			name: "federated import whose ConfigMap is not written yet", req: podRequest(t, annotated("fed-pending")),
			allowed: true, mounts: []Mount{MountFor(fedPending)},
			warnings: []string{`ServiceAccountImport "fed-pending" has no ConfigMap "fed-pending-federated" yet`},
		},
		{
			name: "federated import, pod without its own automounted token",
			req: podRequest(t, func() *corev1.Pod {
				p := annotated("fed")
				p.Spec.AutomountServiceAccountToken = ptr.To(false)
				return p
			}()),
			allowed: true, mounts: []Mount{MountFor(fed)},
		},
		{
			name: "ConfigMap of the federated import's name owned by another import", req: podRequest(t, annotated("ready,fed-hijacked")),
			reason: DenyConfigMapConflict,
			contains: []string{`ConfigMap "fed-hijacked-federated" in namespace "team" is not ServiceAccountImport "fed-hijacked"'s`,
				"delete or rename that ConfigMap"},
		},
		{
			name: "federated import, conflicting volume",
			req: podRequest(t, func() *corev1.Pod {
				p := annotated("fed")
				p.Spec.Volumes = []corev1.Volume{Mount{Name: "fed"}.volume()}
				return p
			}()),
			reason: DenyVolumeConflict, contains: []string{`volume named "mcsa-fed" that is not the projected volume of federated ServiceAccountImport "fed"`},
		},
		{name: "federated import already mounted", req: podRequest(t, mounted(annotated("ready,fed"), MountFor(ready), MountFor(fed))), allowed: true},
		{
			name: "not a creation",
			req: func() admission.Request {
				r := podRequest(t, annotated("gone"))
				r.Operation = admissionv1.Update
				return r
			}(),
			allowed: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHandler(objs...)
			var before float64
			if tc.reason != "" {
				before = counterValue(t, denials.WithLabelValues(tc.reason))
			}
			resp := h.Handle(context.Background(), tc.req)
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v (%v), want %v", resp.Allowed, resp.Result, tc.allowed)
			}
			if !tc.allowed {
				for _, c := range tc.contains {
					if !strings.Contains(resp.Result.Message, c) {
						t.Errorf("message %q lacks %q", resp.Result.Message, c)
					}
				}
				if after := counterValue(t, denials.WithLabelValues(tc.reason)); after != before+1 {
					t.Errorf("denials{reason=%s} went from %v to %v", tc.reason, before, after)
				}
				return
			}
			if got := strings.Join(resp.Warnings, "\n"); len(tc.warnings) == 0 && got != "" {
				t.Errorf("unexpected warnings %q", got)
			} else {
				for _, w := range tc.warnings {
					if !strings.Contains(got, w) {
						t.Errorf("warnings %q lack %q", got, w)
					}
				}
			}
			var pod corev1.Pod
			if err := json.Unmarshal(tc.req.Object.Raw, &pod); err != nil {
				t.Fatal(err)
			}
			if tc.mounts == nil {
				if len(resp.Patches) != 0 {
					t.Fatalf("pod patched: %v", resp.Patches)
				}
				return
			}
			got, _, err := applyPatch(t, &pod, tc.mounts)
			if err != nil {
				t.Fatal(err)
			}
			want := mounted(&pod, tc.mounts...)
			if fmt.Sprint(resp.Patches) != fmt.Sprint(mustPatch(t, &pod, tc.mounts)) || mustJSON(got) != mustJSON(want) {
				t.Fatalf("patches %v do not mount %v", resp.Patches, tc.mounts)
			}
		})
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func observations(t *testing.T, outcome string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := admissionDuration.WithLabelValues(outcome).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func mustPatch(t *testing.T, pod *corev1.Pod, imports []Mount) any {
	ops, err := PatchPod(pod, imports)
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

func TestMutationsMetric(t *testing.T) {
	ready := serviceAccountImport("team", "ready")
	h := newHandler(ready, importSecret(ready))
	before := counterValue(t, mutations)
	beforeCount := observations(t, "mutated")
	if resp := h.Handle(context.Background(), podRequest(t, annotated("ready"))); !resp.Allowed || len(resp.Patches) == 0 {
		t.Fatalf("not mutated: %v", resp.Result)
	}
	if after := counterValue(t, mutations); after != before+1 {
		t.Errorf("mutations went from %v to %v", before, after)
	}
	if after := observations(t, "mutated"); after != beforeCount+1 {
		t.Errorf("admission latency observations went from %d to %d", beforeCount, after)
	}
}

// BenchmarkHandle measures the handler on a pod asking for three imports (reads from an
// in-memory client, so this is the handler's own cost).
func BenchmarkHandle(b *testing.B) {
	var objs []client.Object
	for _, name := range []string{"a", "b", "c"} {
		imp := serviceAccountImport("team", name)
		objs = append(objs, imp, importSecret(imp))
	}
	h := newHandler(objs...)
	pod := annotated("a, b, c")
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "sidecar", Image: "proxy"})
	req := podRequest(b, pod)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if resp := h.Handle(ctx, req); !resp.Allowed || len(resp.Patches) == 0 {
			b.Fatalf("not mutated: %v", resp.Result)
		}
	}
}

// TestHandleReadsCacheFirst checks that the cache answers what it holds, and that a miss (an
// import created just before its pod, a secret the cache does not hold) is read directly.
func TestHandleReadsCacheFirst(t *testing.T) {
	s := testScheme()
	cached := serviceAccountImport("team", "cached")
	late := serviceAccountImport("team", "late")
	hijacked := serviceAccountImport("team", "hijacked")
	foreign := importSecret(hijacked)
	foreign.OwnerReferences, foreign.Labels = nil, nil
	fedCached := federatedImport("fed-cached", nil)
	fedLate := federatedImport("fed-late", nil)
	fedHijacked := federatedImport("fed-hijacked", nil)
	foreignConfigMap := importConfigMap(fedHijacked)
	foreignConfigMap.OwnerReferences, foreignConfigMap.Labels = nil, nil
	h := &Handler{
		// The controller's cache holds secrets and ConfigMaps as metadata only: reading a whole
		// one from it would start an informer of whole objects (importer.CacheOptions).
		Cache: metadataOnly{fake.NewClientBuilder().WithScheme(s).WithObjects(cached, importSecret(cached), hijacked,
			fedCached, importConfigMap(fedCached), fedHijacked).Build()},
		Reader: fake.NewClientBuilder().WithScheme(s).WithObjects(late, importSecret(late), hijacked, foreign,
			fedLate, importConfigMap(fedLate), fedHijacked, foreignConfigMap).Build(),
		Decoder: admission.NewDecoder(s),
	}
	for _, tc := range []struct {
		name, annotation string
		allowed          bool
		contains         string
	}{
		{"held by the cache only", "cached", true, ""},
		{"created just before the pod", "late", true, ""},
		{"foreign secret the cache does not hold", "hijacked", false, `secret "hijacked-token"`},
		{"federated, held by the cache only", "fed-cached", true, ""},
		{"federated, created just before the pod", "fed-late", true, ""},
		{"foreign ConfigMap the cache does not hold", "fed-hijacked", false, `ConfigMap "fed-hijacked-federated"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.Handle(context.Background(), podRequest(t, annotated(tc.annotation)))
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%s)", resp.Allowed, tc.allowed, resp.Result.Message)
			}
			if tc.allowed && len(resp.Patches) == 0 {
				t.Fatal("allowed without mounting the import")
			}
			if len(resp.Warnings) > 0 {
				t.Fatalf("unexpected warnings %v: the secret was not found", resp.Warnings)
			}
			if !strings.Contains(resp.Result.Message, tc.contains) {
				t.Fatalf("message %q lacks %q", resp.Result.Message, tc.contains)
			}
		})
	}
}

// metadataOnly is a cache that refuses to read whole secrets and ConfigMaps.
type metadataOnly struct{ client.Reader }

func (m metadataOnly) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	switch obj.(type) {
	case *corev1.Secret, *corev1.ConfigMap:
		return fmt.Errorf("a whole %T read from the cache", obj)
	}
	return m.Reader.Get(ctx, key, obj, opts...)
}
