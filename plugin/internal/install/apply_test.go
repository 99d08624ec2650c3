package install

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube/kubefake"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

func rendered(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	b, err := Render(Params{})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Objects(b)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func actions(results []Result) map[kube.Action]int {
	n := map[kube.Action]int{}
	for _, r := range results {
		n[r.Action]++
	}
	return n
}

func TestObjects(t *testing.T) {
	objs, err := Objects([]byte(`# leading comment
---
apiVersion: v1
kind: Namespace
metadata:
  name: a
---
# only a comment
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: b
  namespace: a
spec:
  replicas: 2
--- 
apiVersion: v1
kind: ConfigMap
metadata: {name: "c---d", namespace: a}
data:
  text: |
    ---
    not a separator: indented
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	if strings.Join(got, " ") != "Namespace/a Deployment/b ConfigMap/c---d" {
		t.Fatalf("objects %v", got)
	}
	// Integers stay integers, as the API server's decoding keeps them.
	if r, _, _ := unstructured.NestedInt64(objs[1].Object, "spec", "replicas"); r != 2 {
		t.Errorf("replicas %v (%T)", objs[1].Object["spec"].(map[string]any)["replicas"], objs[1].Object["spec"].(map[string]any)["replicas"])
	}
	if text, _, _ := unstructured.NestedString(objs[2].Object, "data", "text"); text != "---\nnot a separator: indented\n" {
		t.Errorf("block scalar %q", text)
	}
	if _, err := Objects([]byte("apiVersion: v1\nkind: [\n")); err == nil {
		t.Error("invalid YAML accepted")
	}
	if _, err := Objects([]byte("metadata: {name: x}\n")); err == nil || !strings.Contains(err.Error(), "document 1") {
		t.Errorf("a document without kind: %v", err)
	}

	// The shipped manifests: one object per document, in kustomize's order.
	all := rendered(t)
	b, _ := Render(Params{})
	if n := strings.Count(string(b), "\nkind: "); len(all) != n || all[0].GetKind() != "Namespace" || all[1].GetKind() != "CustomResourceDefinition" {
		t.Errorf("%d objects from %d documents, first %s, %s", len(all), n, all[0].GetKind(), all[1].GetKind())
	}
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	c := kubefake.New("cluster1")
	objs := rendered(t)
	in := &Installer{Clients: c.Clients(), UI: ui.New(&bytes.Buffer{})}

	results, err := in.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	if n := actions(results); n[kube.Created] != len(objs) {
		t.Errorf("first install: %v for %d objects", n, len(objs))
	}
	if got := len(c.Names()); got != len(objs) {
		t.Errorf("%d objects stored, want %d: %v", got, len(objs), c.Names())
	}
	results, err = in.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	if n := actions(results); n[kube.Unchanged] != len(objs) {
		t.Errorf("second install: %v", n)
	}

	// Drift: a changed replica count is put back.
	dep, _ := c.Kube.AppsV1().Deployments(manifests.Namespace).Get(ctx, manifests.ControllerDeployment, metav1.GetOptions{})
	want := *dep.Spec.Replicas
	dep.Spec.Replicas = ptrTo(want + 3)
	if _, err := c.Kube.AppsV1().Deployments(manifests.Namespace).Update(ctx, dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	results, err = in.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	if n := actions(results); n[kube.Configured] != 1 || n[kube.Unchanged] != len(objs)-1 {
		t.Errorf("install after drift: %v", n)
	}
	dep, _ = c.Kube.AppsV1().Deployments(manifests.Namespace).Get(ctx, manifests.ControllerDeployment, metav1.GetOptions{})
	if *dep.Spec.Replicas != want {
		t.Errorf("replicas %d, want %d", *dep.Spec.Replicas, want)
	}
}

func ptrTo(i int32) *int32 { return &i }

func TestServerDryRun(t *testing.T) {
	ctx := context.Background()
	c := kubefake.New("cluster1")
	objs := rendered(t)
	in := &Installer{Clients: c.Clients(), UI: ui.New(&bytes.Buffer{}), DryRun: true}

	// The API server stores nothing of a dry run, not even the namespace the rest needs.
	results, err := in.Apply(ctx, objs)
	if err == nil || !strings.Contains(err.Error(), "a server dry run needs namespace "+manifests.Namespace+" to exist already; `kubectl mcsa render` prints the manifests without a server") {
		t.Fatalf("dry run in a fresh cluster: %v", err)
	}
	if len(c.Names()) != 0 {
		t.Errorf("a dry run stored %v", c.Names())
	}
	// Cluster-scoped objects before the first namespaced one were validated.
	if len(results) != 2 || results[0].Object.GetKind() != "Namespace" || results[1].Object.GetKind() != "CustomResourceDefinition" {
		t.Errorf("results before the failure: %v", results)
	}

	c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: manifests.Namespace}})
	results, err = in.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	// The namespace there lacks install's labels.
	if n := actions(results); n[kube.Created] != len(objs)-1 || n[kube.Configured] != 1 {
		t.Errorf("dry run: %v", n)
	}
	if ns, _ := c.Kube.CoreV1().Namespaces().Get(ctx, manifests.Namespace, metav1.GetOptions{}); len(ns.Labels) != 0 {
		t.Errorf("a dry run labelled the namespace: %v", ns.Labels)
	}
	if len(c.Names()) != 1 {
		t.Errorf("a dry run stored %v", c.Names())
	}
}

func TestWait(t *testing.T) {
	ctx := context.Background()
	c := kubefake.New("cluster1")
	objs := rendered(t)
	var out bytes.Buffer
	in := &Installer{Clients: c.Clients(), UI: ui.New(&out)}
	if _, err := in.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}

	dep, _ := c.Kube.AppsV1().Deployments(manifests.Namespace).Get(ctx, manifests.ControllerDeployment, metav1.GetOptions{})
	replicas := *dep.Spec.Replicas
	err := in.Wait(ctx, objs, 1500*time.Millisecond)
	if err == nil || err.Error() != fmt.Sprintf("deployment %s/%s not available (0/%d replicas available): check `kubectl --context cluster1 -n %s describe deployment %s` and its pods' logs",
		manifests.Namespace, manifests.ControllerDeployment, replicas, manifests.Namespace, manifests.ControllerDeployment) {
		t.Fatalf("waiting for a deployment without replicas: %v", err)
	}

	// The controller runs, but has not injected the webhook's CA yet.
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, AvailableReplicas: replicas, UpdatedReplicas: replicas,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}}
	if _, err := c.Kube.AppsV1().Deployments(manifests.Namespace).Update(ctx, dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = in.Wait(ctx, objs, 1500*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "webhook configuration "+manifests.WebhookConfiguration+" has no CA bundle yet: the controller injects it") {
		t.Fatalf("waiting for the CA: %v", err)
	}

	w, _ := c.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, manifests.WebhookConfiguration, metav1.GetOptions{})
	for i := range w.Webhooks {
		w.Webhooks[i].ClientConfig.CABundle = []byte("CA")
	}
	if _, err := c.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, w, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := in.Wait(ctx, objs, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"✓ deployment " + manifests.Namespace + "/" + manifests.ControllerDeployment + " available", "✓ webhook " + manifests.WebhookConfiguration + " has its CA"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, out.String())
		}
	}
}

func TestUninstall(t *testing.T) {
	ctx := context.Background()
	objs := rendered(t)
	tests := []struct {
		name          string
		deleteImports bool
		dryRun        bool
		left          []string
		actions       map[kube.Action]int
	}{
		{"keeps the API and the credentials", false, false,
			[]string{"CustomResourceDefinition.apiextensions.k8s.io/" + manifests.CRD, "Namespace/" + manifests.Namespace, "ServiceAccountImport.multicluster.admiralty.io/" + manifests.Namespace + "/cluster2"},
			map[kube.Action]int{kube.Kept: 2, kube.Deleted: len(objs) - 2}},
		{"delete imports too", true, false,
			// The API server's garbage collection removes the import with its CRD; the fake does not.
			[]string{"ServiceAccountImport.multicluster.admiralty.io/" + manifests.Namespace + "/cluster2"},
			map[kube.Action]int{kube.Deleted: len(objs)}},
		{"dry run", true, true, nil, map[kube.Action]int{kube.Deleted: len(objs)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := kubefake.New("cluster1")
			in := &Installer{Clients: c.Clients(), UI: ui.New(&bytes.Buffer{})}
			if _, err := in.Apply(ctx, objs); err != nil {
				t.Fatal(err)
			}
			c.Add(&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "cluster2", Namespace: manifests.Namespace}})
			before := c.Names()
			if n := in.CountImports(ctx); n != 1 {
				t.Errorf("CountImports = %d", n)
			}
			in.DryRun = tt.dryRun
			results, err := in.Uninstall(ctx, objs, tt.deleteImports)
			if err != nil {
				t.Fatal(err)
			}
			if got := actions(results); fmt.Sprint(got) != fmt.Sprint(tt.actions) {
				t.Errorf("actions %v, want %v", got, tt.actions)
			}
			if results[0].Object.GetKind() != "MutatingWebhookConfiguration" || results[len(results)-1].Object.GetKind() != "Namespace" {
				t.Errorf("not in reverse order: first %s, last %s", results[0].Object.GetKind(), results[len(results)-1].Object.GetKind())
			}
			want := tt.left
			if tt.dryRun {
				want = before
			}
			if got := c.Names(); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("left:\n%v\nwant\n%v", got, want)
			}
			// Uninstalling again finds nothing to delete.
			if !tt.dryRun {
				results, err := in.Uninstall(ctx, objs, tt.deleteImports)
				if err != nil {
					t.Fatal(err)
				}
				if n := actions(results); n[kube.Deleted] != 0 {
					t.Errorf("second uninstall deleted %v", n)
				}
			}
		})
	}
	c := kubefake.New("cluster1")
	c.Unserve(v1alpha1.Resource)
	if n := (&Installer{Clients: c.Clients()}).CountImports(ctx); n != -1 {
		t.Errorf("CountImports without the API = %d", n)
	}
}

func TestCheckServerVersion(t *testing.T) {
	for _, tc := range []struct {
		version string
		wantErr string
	}{
		{"v1.37.2", ""},
		{"v1.28.0", ""},
		{"v1.30.4-eks-a737599", ""},
		{"v1.27.16", "runs Kubernetes v1.27.16; kubectl-mcsa needs v1.28.0 or later"},
		{"v1.21.0+k3s1", "needs v1.28.0 or later"},
		{"not-a-version", "reading the Kubernetes version"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			c := kubefake.New("cluster1")
			c.Kube.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: tc.version}
			in := &Installer{Clients: c.Clients(), UI: ui.New(&bytes.Buffer{})}
			_, err := in.Apply(context.Background(), rendered(t))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
			}
			if n := len(c.Names()); n != 0 {
				t.Errorf("%d objects written before the refusal", n)
			}
		})
	}
}
