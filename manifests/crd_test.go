package manifests_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// TestCRD applies the generated CRD to a real kube-apiserver and checks its schema, status
// subresource and printer columns as users meet them.
func TestCRD(t *testing.T) {
	f := fixture.ForTest(t, fixture.Options{Clusters: []string{"crd"}, CRD: []string{"crd"}})
	c := f.Cluster("crd")
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(c.Config)
	sais := dyn.Resource(v1alpha1.Resource).Namespace("default")

	t.Run("original manifest round-trips", func(t *testing.T) {
		// The getting-started object of the original project, unchanged.
		obj := mustObject(t, `
apiVersion: multicluster.admiralty.io/v1alpha1
kind: ServiceAccountImport
metadata:
  name: cluster2-default-pod-lister
spec:
  clusterName: cluster2
  namespace: default
  name: pod-lister
`)
		created, err := sais.Create(ctx, obj, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := sais.Get(ctx, created.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		spec, _, _ := unstructured.NestedStringMap(got.Object, "spec")
		want := map[string]string{"clusterName": "cluster2", "namespace": "default", "name": "pod-lister"}
		for k, v := range want {
			if spec[k] != v {
				t.Errorf("spec.%s = %q, want %q", k, spec[k], v)
			}
		}
		if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, "spec", "expirationSeconds"); found {
			t.Error("expirationSeconds defaulted in the schema; the importer's flag owns the default")
		}
	})

	t.Run("new fields round-trip", func(t *testing.T) {
		obj := mustObject(t, `
apiVersion: multicluster.admiralty.io/v1alpha1
kind: ServiceAccountImport
metadata:
  name: with-lifetime
spec:
  clusterName: cluster2
  namespace: default
  name: pod-lister
  expirationSeconds: 600
  audiences: [vault, https://cluster2.example]
`)
		got, err := sais.Create(ctx, obj, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		exp, _, _ := unstructured.NestedInt64(got.Object, "spec", "expirationSeconds")
		aud, _, _ := unstructured.NestedStringSlice(got.Object, "spec", "audiences")
		if exp != 600 || len(aud) != 2 {
			t.Errorf("got expirationSeconds=%d audiences=%v", exp, aud)
		}
	})

	invalid := []struct {
		name, spec string
		wantInMsg  []string
	}{
		{"missing clusterName", `{namespace: default, name: sa}`, []string{"spec.clusterName: Required value"}},
		{"missing namespace and name", `{clusterName: c2}`, []string{"spec.namespace: Required value", "spec.name: Required value"}},
		{"cluster name not DNS", `{clusterName: gke_proj_zone_name, namespace: default, name: sa}`, []string{"spec.clusterName", "should match"}},
		{"namespace uppercase", `{clusterName: c2, namespace: Default, name: sa}`, []string{"spec.namespace", "should match"}},
		{"name with slash", `{clusterName: c2, namespace: default, name: a/b}`, []string{"spec.name", "should match"}},
		{"lifetime too short", `{clusterName: c2, namespace: default, name: sa, expirationSeconds: 599}`, []string{"spec.expirationSeconds", "greater than or equal to 600"}},
		{"empty audience", `{clusterName: c2, namespace: default, name: sa, audiences: [""]}`, []string{"spec.audiences[0]", "at least 1"}},
		{"no spec", ``, []string{"spec: Required value"}},
	}
	for _, tt := range invalid {
		t.Run("rejects "+tt.name, func(t *testing.T) {
			doc := "apiVersion: multicluster.admiralty.io/v1alpha1\nkind: ServiceAccountImport\nmetadata: {name: invalid}\n"
			if tt.spec != "" {
				doc += "spec: " + tt.spec + "\n"
			}
			_, err := sais.Create(ctx, mustObject(t, doc), metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want Invalid error, got %v", err)
			}
			for _, s := range tt.wantInMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}

	t.Run("status only through subresource", func(t *testing.T) {
		patch := []byte(`{"status":{"observedGeneration":7,"lastRefreshRequest":"x"}}`)
		got, err := sais.Patch(ctx, "cluster2-default-pod-lister", types.MergePatchType, patch, metav1.PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, "status"); found {
			t.Fatalf("status written through the main resource: %v", got.Object["status"])
		}
		got, err = sais.Patch(ctx, "cluster2-default-pod-lister", types.MergePatchType, patch, metav1.PatchOptions{}, "status")
		if err != nil {
			t.Fatal(err)
		}
		if g, _, _ := unstructured.NestedInt64(got.Object, "status", "observedGeneration"); g != 7 {
			t.Fatalf("status subresource did not take the write: %v", got.Object["status"])
		}
	})

	t.Run("printer columns", func(t *testing.T) {
		var table metav1.Table
		err := c.Clientset().CoreV1().RESTClient().Get().
			AbsPath("/apis/multicluster.admiralty.io/v1alpha1/namespaces/default/serviceaccountimports").
			SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").
			Do(ctx).Into(&table)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range table.ColumnDefinitions {
			names = append(names, c.Name)
		}
		want := "Name,Cluster,Remote-Namespace,Remote-Name,Ready,Reason,Expires,Age"
		if got := strings.Join(names, ","); got != want {
			t.Fatalf("columns = %s, want %s", got, want)
		}
		found := false
		for _, row := range table.Rows {
			if row.Cells[0] == "cluster2-default-pod-lister" {
				found = row.Cells[1] == "cluster2" && row.Cells[2] == "default" && row.Cells[3] == "pod-lister"
			}
		}
		if !found {
			t.Fatalf("row for cluster2-default-pod-lister missing or wrong: %v", table.Rows)
		}
	})

	t.Run("short name and category", func(t *testing.T) {
		crd, err := dyn.Resource(crdGVR).Get(ctx, manifests.CRD, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		short, _, _ := unstructured.NestedStringSlice(crd.Object, "spec", "names", "shortNames")
		if len(short) != 1 || short[0] != "sai" {
			t.Fatalf("shortNames = %v", short)
		}
	})
}

func mustObject(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}
