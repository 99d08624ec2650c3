// Package install renders the in-cluster parts from the manifests embedded in the plugin and
// applies or removes them with server-side apply.
package install

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/resid"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/version"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
)

// DefaultImage is the controller image named in the shipped manifests, which the generated
// overlay rewrites.
const DefaultImage = "ghcr.io/kubectl-mcsa/mcsa-controller"

// Params are the installation's parameters; they become a kustomize overlay, never text
// substitutions in the manifests.
type Params struct {
	// Image overrides the controller image: "name", "name:tag" or "name@sha256:…". Empty
	// means DefaultImage at this plugin's version.
	Image string
	// ClusterProfiles, when set, is the namespace the controller publishes ClusterProfiles in:
	// the ClusterProfile CRD and the controller's Role there are added
	// (manifests/clusterprofiles), and the controller's flag.
	ClusterProfiles string
}

// Overlay is the kustomization.yaml that Render builds on top of the shipped manifests,
// which it finds at base (a path relative to the overlay's folder).
func Overlay(p Params, base string) ([]byte, error) {
	img := types.Image{Name: DefaultImage}
	switch {
	case p.Image != "":
		name, tag, digest := splitImage(p.Image)
		img.NewName, img.NewTag, img.Digest = name, tag, digest
	case version.Version != "dev":
		img.NewTag = version.Version
	}
	k := types.Kustomization{
		TypeMeta:  types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind},
		Resources: []string{base},
	}
	if img.NewName != "" || img.NewTag != "" || img.Digest != "" {
		k.Images = []types.Image{img}
	}
	if p.ClusterProfiles != "" {
		patches, err := clusterProfilesPatches(p.ClusterProfiles)
		if err != nil {
			return nil, err
		}
		k.Resources = append(k.Resources, path.Join(path.Dir(base), "clusterprofiles"))
		k.Patches = patches
	}
	return yaml.Marshal(k)
}

// clusterProfilesPatches move the ClusterProfile RBAC (manifests/clusterprofiles) from its
// placeholder namespace to ns, and turn the publisher on in the controller.
func clusterProfilesPatches(ns string) ([]types.Patch, error) {
	op := func(o, path string, value any) (string, error) {
		b, err := json.Marshal([]map[string]any{{"op": o, "path": path, "value": value}})
		return string(b), err
	}
	toNamespace, err := op("replace", "/metadata/namespace", ns)
	if err != nil {
		return nil, err
	}
	flag, err := op("add", "/spec/template/spec/containers/0/args/-", "--"+manifests.ClusterProfilesFlag+"="+ns)
	if err != nil {
		return nil, err
	}
	rbac := func(kind string) types.Patch {
		return types.Patch{Patch: toNamespace, Target: &types.Selector{ResId: resid.ResId{
			Gvk: resid.Gvk{Group: rbacv1.GroupName, Version: "v1", Kind: kind}, Name: manifests.ClusterProfilesRBAC}}}
	}
	return []types.Patch{
		rbac("Role"),
		rbac("RoleBinding"),
		{Patch: flag, Target: &types.Selector{ResId: resid.ResId{
			Gvk: resid.Gvk{Group: appsv1.GroupName, Version: "v1", Kind: "Deployment"}, Name: manifests.ControllerDeployment, Namespace: manifests.Namespace}}},
	}, nil
}

// splitImage splits an image reference into name, tag and digest; the tag's colon is the
// last one after the last slash, so registry ports are kept in the name.
func splitImage(ref string) (name, tag, digest string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref, digest = ref[:i], ref[i+1:]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref, tag = ref[:i], ref[i+1:]
	}
	return ref, tag, digest
}

// Render builds the manifests with kustomize, in memory, from the embedded folders and the
// overlay for p. The result is what `kubectl kustomize` prints for the same overlay.
func Render(p Params) ([]byte, error) {
	mem := filesys.MakeFsInMemory()
	err := fs.WalkDir(manifests.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		b, err := manifests.FS.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(path.Join("/manifests", p), b)
	})
	if err != nil {
		return nil, err
	}
	overlay, err := Overlay(p, "../manifests/default")
	if err != nil {
		return nil, err
	}
	if err := mem.WriteFile("/overlay/kustomization.yaml", overlay); err != nil {
		return nil, err
	}
	opts := krusty.MakeDefaultOptions()
	// The order `kubectl kustomize` uses: namespaces and CRDs first, webhooks last.
	opts.Reorder = krusty.ReorderOptionLegacy
	res, err := krusty.MakeKustomizer(opts).Run(mem, "/overlay")
	if err != nil {
		return nil, fmt.Errorf("rendering the manifests: %w", err)
	}
	return res.AsYaml()
}

// Objects splits a rendered YAML stream into objects, in order, as kubectl reads manifests:
// apimachinery's YAML reader finds the documents (whatever their separators' spacing), and
// the unstructured decoder keeps integers integers.
func Objects(rendered []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(rendered)))
	var objs []*unstructured.Unstructured
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if t := bytes.TrimSpace(j); len(t) == 0 || string(t) == "null" {
			continue // empty, or comments only
		}
		u := &unstructured.Unstructured{}
		if _, _, err := unstructured.UnstructuredJSONScheme.Decode(j, nil, u); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		objs = append(objs, u)
	}
}
