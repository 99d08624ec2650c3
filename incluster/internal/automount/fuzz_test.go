package automount

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// countingReader counts the reads the handler makes, and fails every one when refuse is set.
type countingReader struct {
	client.Reader
	reads  atomic.Int64
	refuse bool
	t      *testing.T
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.reads.Add(1)
	if r.refuse {
		r.t.Errorf("read %s %s: the handler should have refused the pod before any read", key, obj.GetObjectKind().GroupVersionKind())
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

func rawRequest(raw []byte) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "req", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: requestNamespace, Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
	}}
}

// TestRefusedBeforeAnyRead: what a pod's author controls cannot make the webhook read the API
// more than the bounds allow, or at all when the pod is refused on its face.
func TestRefusedBeforeAnyRead(t *testing.T) {
	many := make([]string, 1000)
	for i := range many {
		many[i] = "import-" + strings.Repeat("x", i%50) + "-" + string(rune('a'+i%26))
	}
	huge := annotated("ready")
	huge.Labels = map[string]string{"padding": strings.Repeat("x", 63)}
	huge.Spec.Containers[0].Args = []string{strings.Repeat("x", MaxPodBytes)}
	for _, tc := range []struct {
		name, reason string
		pod          *corev1.Pod
	}{
		{"a thousand imports", DenyInvalidAnnotation, annotated(strings.Join(many, ","))},
		{"an annotation longer than any legal list", DenyInvalidAnnotation, annotated(strings.Repeat("a,", v1alpha1.MaxImportAnnotationLength))},
		{"a pod larger than etcd stores", DenyInvalidRequest, huge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHandler()
			r := &countingReader{Reader: h.Reader, refuse: true, t: t}
			h.Reader = r
			raw, err := json.Marshal(tc.pod)
			if err != nil {
				t.Fatal(err)
			}
			resp, outcome, reason := h.handle(context.Background(), rawRequest(raw))
			if resp.Allowed || outcome != outcomeDenied || reason != tc.reason {
				t.Fatalf("allowed %v, outcome %s, reason %s (%s); want denied for %s", resp.Allowed, outcome, reason, resp.Result.Message, tc.reason)
			}
		})
	}
}

// FuzzHandle feeds the handler pods as an API server would send them, whatever their author
// wrote (a pod without a spec cannot reach it: the server always serializes one): it never
// panics, reads the API at most once per import it may look up (and its secret, or its
// ConfigMap for a federated import), answers every denial with a message, and every patch it
// returns applies to the pod and leaves a pod.
func FuzzHandle(f *testing.F) {
	ready := serviceAccountImport(requestNamespace, "ready")
	fed := federatedImport("fed", nil)
	fedPending := federatedImport("fed-pending", nil)
	fedMounted := mounted(annotated("ready,fed"), MountFor(ready), MountFor(fed))
	seed := func(p *corev1.Pod) []byte {
		b, err := json.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	for _, s := range [][]byte{
		seed(annotated("ready")), seed(annotated("ready,missing")), seed(annotated(" ready , ready ")),
		seed(annotated("other/x")), seed(annotated("")), seed(podWith([]string{"a", "b"}, []string{"i"}, nil)),
		seed(annotated("fed")), seed(annotated("ready, fed, fed-pending")), seed(fedMounted),
		seed(mounted(annotated("fed"), Mount{Name: "fed"})),
		[]byte(`{}`), []byte(`{"metadata":{"annotations":{"` + v1alpha1.ImportNameKey + `":"ready"}},"spec":{"containers":null}}`),
		[]byte(`not json`), nil,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		// What decodes as a pod is sent as the API server serializes one (spec and metadata
		// always present), the rest as it came.
		var p corev1.Pod
		if json.Unmarshal(raw, &p) == nil {
			var err error
			if raw, err = json.Marshal(&p); err != nil {
				t.Fatal(err)
			}
		}
		h := newHandler(ready, importSecret(ready), fed, importConfigMap(fed), fedPending)
		r := &countingReader{Reader: h.Reader, t: t}
		h.Reader = r
		resp, outcome, _ := h.handle(context.Background(), rawRequest(raw))
		if n := r.reads.Load(); n > 2*v1alpha1.MaxImportsPerPod {
			t.Fatalf("%d reads for one pod", n)
		}
		switch {
		case !resp.Allowed:
			if outcome != outcomeDenied && resp.Result != nil && resp.Result.Code < 500 {
				t.Fatalf("refused with outcome %s", outcome)
			}
			if resp.Result == nil || resp.Result.Message == "" {
				t.Fatal("refused without a message")
			}
		case len(resp.Patches) > 0:
			patch, err := json.Marshal(resp.Patches)
			if err != nil {
				t.Fatal(err)
			}
			p, err := jsonpatch.DecodePatch(patch)
			if err != nil {
				t.Fatalf("patch %s: %v", patch, err)
			}
			out, err := p.Apply(raw)
			if err != nil {
				t.Fatalf("patch %s does not apply: %v", patch, err)
			}
			if err := json.Unmarshal(out, &corev1.Pod{}); err != nil {
				t.Fatalf("patched pod: %v", err)
			}
		}
	})
}
