package install

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	cpv1alpha1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"

	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
)

func TestSplitImage(t *testing.T) {
	tests := []struct{ ref, name, tag, digest string }{
		{"mcsa", "mcsa", "", ""},
		{"mcsa:v1", "mcsa", "v1", ""},
		{"registry:5000/team/mcsa", "registry:5000/team/mcsa", "", ""},
		{"registry:5000/team/mcsa:v1", "registry:5000/team/mcsa", "v1", ""},
		{"mcsa@sha256:abc", "mcsa", "", "sha256:abc"},
		{"mcsa:v1@sha256:abc", "mcsa", "v1", "sha256:abc"},
	}
	for _, tt := range tests {
		name, tag, digest := splitImage(tt.ref)
		if name != tt.name || tag != tt.tag || digest != tt.digest {
			t.Errorf("splitImage(%q) = %q, %q, %q; want %q, %q, %q", tt.ref, name, tag, digest, tt.name, tt.tag, tt.digest)
		}
	}
}

// TestRenderMatchesKubectlKustomize checks that the in-memory rendering is what
// `kubectl kustomize` prints for the same overlay on disk.
func TestRenderMatchesKubectlKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH: nothing to compare with")
	}
	p := Params{Image: "registry.local:5000/mcsa/mcsa-controller:v1.2.3"}
	got, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	err = fs.WalkDir(manifests.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := manifests.FS.ReadFile(path)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, "manifests", path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	overlay, err := Overlay(p, "../manifests/default")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "overlay"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "overlay", "kustomization.yaml"), overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := exec.Command(kubectl, "kustomize", filepath.Join(dir, "overlay")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	if strings.TrimSpace(string(got)) != strings.TrimSpace(string(want)) {
		t.Errorf("render differs from kubectl kustomize:\n--- render\n%s\n--- kubectl kustomize\n%s", got, want)
	}
}

// TestRenderClusterProfiles: --cluster-profiles adds the ClusterProfile CRD and the controller's
// Role and binding in that namespace, and turns the publisher on in the controller.
func TestRenderClusterProfiles(t *testing.T) {
	rendered, err := Render(Params{ClusterProfiles: "fleet"})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Objects(rendered)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, o := range objs {
		found[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = true
		if o.GetKind() == "RoleBinding" && o.GetName() == manifests.ClusterProfilesRBAC {
			subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			if len(subjects) != 1 || subjects[0].(map[string]any)["namespace"] != manifests.Namespace {
				t.Errorf("binding's subjects %v, want the controller's service account in %s", subjects, manifests.Namespace)
			}
		}
		if o.GetKind() == "Deployment" && o.GetName() == manifests.ControllerDeployment {
			containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
			if !slices.Contains(args, "--"+manifests.ClusterProfilesFlag+"=fleet") {
				t.Errorf("controller args %v, want the publisher's flag", args)
			}
		}
	}
	for _, want := range []string{
		"CustomResourceDefinition//clusterprofiles." + cpv1alpha1.Group,
		"Role/fleet/" + manifests.ClusterProfilesRBAC,
		"RoleBinding/fleet/" + manifests.ClusterProfilesRBAC,
	} {
		if !found[want] {
			t.Errorf("no %s in the rendered manifests", want)
		}
	}
	if found["Role/cluster-profiles/"+manifests.ClusterProfilesRBAC] {
		t.Error("the placeholder namespace is left")
	}
	plain, err := Render(Params{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(plain), cpv1alpha1.Group) || strings.Contains(string(plain), manifests.ClusterProfilesFlag) {
		t.Error("the default install has ClusterProfile parts: they are opt-in")
	}
}
