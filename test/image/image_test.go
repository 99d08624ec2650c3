package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestBuild builds two images twice, from an import path and from a path relative to the
// module's root, and checks that the tarballs name both and that their digests agree.
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles Go programs and the image tool; runs without -short")
	}
	specs := []Spec{
		{Ref: "mcsa.test/pause:e2e", Package: "github.com/kubectl-mcsa/kubectl-mcsa/test/images/pause"},
		{Ref: "mcsa.test/nginx:e2e", Package: "./test/images/nginx"},
	}
	var manifests [][]tarballImage
	for _, name := range []string{"a.tar", "b.tar"} {
		out := filepath.Join(t.TempDir(), name)
		if err := Build(context.Background(), out, specs...); err != nil {
			t.Fatal(err)
		}
		manifests = append(manifests, readManifest(t, out))
	}
	for _, m := range manifests[0] {
		if len(m.RepoTags) != 1 || len(m.Layers) != 1 {
			t.Errorf("image %v with layers %v: want one name and one layer", m.RepoTags, m.Layers)
		}
	}
	if len(manifests[0]) != len(specs) {
		t.Errorf("the tarball holds %d images, want %d", len(manifests[0]), len(specs))
	}
	// The tool lists the images sorted by name; the config's digest is the image's id.
	if !reflect.DeepEqual(manifests[0], manifests[1]) {
		t.Errorf("two builds of the same programs differ:\n%+v\n%+v", manifests[0], manifests[1])
	}
}

func TestBuildErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.tar")
	if err := Build(context.Background(), out); err == nil {
		t.Error("Build of no image succeeded")
	}
	if err := Build(context.Background(), out, Spec{Ref: "mcsa.test/x:1"}); err == nil {
		t.Error("Build of an image without binary nor package succeeded")
	}
}

// tarballImage is an entry of the manifest.json of a `docker save` tarball.
type tarballImage struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func readManifest(t *testing.T, tarball string) []tarballImage {
	t.Helper()
	f, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s has no manifest.json", tarball)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "manifest.json" {
			continue
		}
		var m []tarballImage
		if err := json.NewDecoder(tr).Decode(&m); err != nil {
			t.Fatalf("%s: manifest.json: %v", tarball, err)
		}
		return m
	}
}
