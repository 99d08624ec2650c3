package manifests_test

import (
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
)

// TestNames renders the default kustomization as the plugin installs it and checks that the
// objects the code looks up by name exist under exactly the names manifests defines, and that
// the RBAC rules naming them (resourceNames) use those names too.
func TestNames(t *testing.T) {
	res := render(t)
	objects := map[string]bool{}       // kind/namespace/name
	resourceNames := map[string]bool{} // resource/name in any rule
	for _, r := range res.Resources() {
		objects[r.GetKind()+"/"+r.GetNamespace()+"/"+r.GetName()] = true
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		rules, _ := m["rules"].([]any)
		for _, rule := range rules {
			rule, _ := rule.(map[string]any)
			resources, _ := rule["resources"].([]any)
			names, _ := rule["resourceNames"].([]any)
			for _, res := range resources {
				for _, n := range names {
					resourceNames[res.(string)+"/"+n.(string)] = true
				}
			}
		}
	}
	ns := manifests.Namespace
	for _, want := range []string{
		"Namespace//" + ns,
		"CustomResourceDefinition//" + manifests.CRD,
		"Deployment/" + ns + "/" + manifests.ControllerDeployment,
		"ServiceAccount/" + ns + "/" + manifests.ControllerServiceAccount,
		"Service/" + ns + "/" + manifests.WebhookService,
		"Secret/" + ns + "/" + manifests.ServingCertSecret,
		"MutatingWebhookConfiguration//" + manifests.WebhookConfiguration,
	} {
		if !objects[want] {
			t.Errorf("the manifests have no %s; they have:\n%s", want, strings.Join(slices.Sorted(maps.Keys(objects)), "\n"))
		}
	}
	for _, want := range []string{
		"secrets/" + manifests.ServingCertSecret,
		"mutatingwebhookconfigurations/" + manifests.WebhookConfiguration,
		"leases/" + manifests.LeaderElectionLease,
	} {
		if !resourceNames[want] {
			t.Errorf("no RBAC rule names %s; rules name:\n%s", want, strings.Join(slices.Sorted(maps.Keys(resourceNames)), "\n"))
		}
	}
}

// TestExpirationBounds checks that the CRD's schema bounds spec.expirationSeconds exactly as
// the API package says (the plugin and the importer check the same bounds).
func TestExpirationBounds(t *testing.T) {
	b, err := manifests.FS.ReadFile("crd/" + v1alpha1.GroupName + "_" + v1alpha1.ResourcePlural + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	for _, v := range crd.Spec.Versions {
		p := v.Schema.OpenAPIV3Schema.Properties["spec"].Properties["expirationSeconds"]
		if p.Minimum == nil || p.Maximum == nil || *p.Minimum != v1alpha1.MinExpirationSeconds || *p.Maximum != v1alpha1.MaxExpirationSeconds {
			t.Errorf("version %s: expirationSeconds bounds %v..%v, want %d..%d", v.Name, p.Minimum, p.Maximum, v1alpha1.MinExpirationSeconds, v1alpha1.MaxExpirationSeconds)
		}
	}
}

// render is the default kustomization as the plugin installs it.
func render(t *testing.T) resmap.ResMap {
	t.Helper()
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(manifestsFS(t), "/default")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// manifestsFS is the embedded manifests in an in-memory file system, at its root.
func manifestsFS(t *testing.T) filesys.FileSystem {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	err := fs.WalkDir(manifests.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := manifests.FS.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(path.Join("/", p), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	return mem
}
