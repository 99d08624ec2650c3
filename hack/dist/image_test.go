package main_test

import (
	"archive/tar"
	"context"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/hack/dist/image"
)

// writableFlags are the controller's flags naming directories it writes to: with a read-only
// root filesystem each must lie on a volume.
// None today: the webhook's serving certificate stays in memory (package servingcert).
var writableFlags []string

// TestControllerImage builds the release image as `make image` does and checks it against
// what manifests/controller/deployment.yaml expects of it: the platforms, an entrypoint that
// is a static binary for each, the user the pod runs as, the ports, flags the binary knows, and
// directories it writes to that are volumes, since the root filesystem is read-only.
func TestControllerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles mcsa-controller; runs without -short")
	}
	root := moduleRoot(t)
	const version = "v0.0.0-imagetest"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	began := time.Now()
	archive := filepath.Join(t.TempDir(), "mcsa-controller.oci.tar")
	run(ctx, t, nil, "go", "run", ".", "image", "-src", root, "-version", version, "-out", archive)
	t.Logf("image built in %s", time.Since(began).Round(time.Millisecond))

	dir := t.TempDir()
	untar(t, archive, dir)
	outer, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("%s is not an OCI image layout: %v", archive, err)
	}
	om, err := outer.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(om.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want the one multi-arch index", len(om.Manifests))
	}
	if got := om.Manifests[0].Annotations["io.containerd.image.name"]; got != image.ControllerRef(version) {
		t.Errorf("image name %q, want %q", got, image.ControllerRef(version))
	}
	if got := om.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; got != version {
		t.Errorf("ref name %q, want %q", got, version)
	}
	idx, err := outer.ImageIndex(om.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}

	dep := deployment(t, root)
	c := dep.Spec.Template.Spec.Containers[0]
	if repo, _, _ := strings.Cut(c.Image, ":"); repo != image.ControllerRepository {
		t.Errorf("the Deployment's image %q is not of %s, which releases publish", c.Image, image.ControllerRepository)
	}
	pod := dep.Spec.Template.Spec.SecurityContext

	var platforms []string
	for _, desc := range im.Manifests {
		p := desc.Platform.OS + "/" + desc.Platform.Architecture
		platforms = append(platforms, p)
		t.Run(p, func(t *testing.T) {
			img, err := idx.Image(desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != desc.Platform.OS || cf.Architecture != desc.Platform.Architecture {
				t.Errorf("config's platform %s/%s, index says %s", cf.OS, cf.Architecture, p)
			}
			if got := cf.Config.Labels["org.opencontainers.image.version"]; got != version {
				t.Errorf("version label %q, want %q", got, version)
			}
			files := layerFiles(t, img)

			// The Deployment sets args only: the image's entrypoint runs, and it must be the
			// controller, static (the image has no libc), for this architecture.
			command := c.Command
			if len(command) == 0 {
				command = cf.Config.Entrypoint
			}
			if !slices.Equal(cf.Config.Entrypoint, []string{image.ControllerEntrypoint}) {
				t.Errorf("entrypoint %q, want [%s]", cf.Config.Entrypoint, image.ControllerEntrypoint)
			}
			var bin []byte
			if len(command) == 0 {
				t.Error("neither the Deployment nor the image says what to run")
			} else if f := files[strings.TrimPrefix(path.Clean(command[0]), "/")]; f == nil {
				t.Errorf("the container runs %s, which the image lacks", command[0])
			} else if f.hdr.Mode&0o111 == 0 {
				t.Errorf("%s is not executable (mode %o)", command[0], f.hdr.Mode)
			} else {
				bin = f.data
				checkELF(t, bin, desc.Platform.Architecture)
			}

			// runAsNonRoot: the kubelet refuses a non-numeric or root user; runAsUser and
			// runAsGroup should agree with the image, which owns its home by that id.
			uid, gid := checkUser(t, cf.Config.User)
			if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot {
				t.Error("the Deployment does not set runAsNonRoot")
			}
			if pod != nil && pod.RunAsUser != nil && *pod.RunAsUser != uid {
				t.Errorf("runAsUser %d, the image's user %d", *pod.RunAsUser, uid)
			}
			if pod != nil && pod.RunAsGroup != nil && *pod.RunAsGroup != gid {
				t.Errorf("runAsGroup %d, the image's group %d", *pod.RunAsGroup, gid)
			}
			if f := files["etc/passwd"]; f == nil || !strings.Contains(string(f.data), ":"+strconv.FormatInt(uid, 10)+":") {
				t.Errorf("/etc/passwd does not name user %d", uid)
			}

			// The ports the image declares are the container's.
			var ports []string
			for _, cp := range c.Ports {
				proto := cp.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				ports = append(ports, strconv.Itoa(int(cp.ContainerPort))+"/"+strings.ToLower(string(proto)))
			}
			var exposed []string
			for p := range cf.Config.ExposedPorts {
				exposed = append(exposed, p)
			}
			slices.Sort(ports)
			slices.Sort(exposed)
			if !slices.Equal(ports, exposed) {
				t.Errorf("image exposes %q, the container's ports are %q", exposed, ports)
			}

			// A read-only root filesystem: no volume the runtime would create in the image,
			// and every directory the controller writes to mounted from a volume.
			if len(cf.Config.Volumes) > 0 {
				t.Errorf("image declares volumes %v; the Deployment mounts what it needs", cf.Config.Volumes)
			}
			if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Error("the Deployment does not set readOnlyRootFilesystem")
			}
			if desc.Platform.Architecture == runtime.GOARCH && runtime.GOOS == "linux" && bin != nil {
				checkFlags(t, bin, c)
			}
		})
	}
	slices.Sort(platforms)
	want := slices.Clone(image.ControllerPlatforms)
	slices.Sort(want)
	if !slices.Equal(platforms, want) {
		t.Errorf("index platforms %q, want %q", platforms, want)
	}
}

// checkFlags runs the binary's -help and checks that it defines every flag of the container's
// args, and that each directory it writes to (writableFlags, as set by args or by default) is
// on a writable volume mount.
func checkFlags(t *testing.T, bin []byte, c corev1.Container) {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "mcsa-controller")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// The flag package prints the usage on stderr and exits 0 for -help.
	out, err := exec.Command(exe, "-help").CombinedOutput()
	if err != nil {
		t.Fatalf("mcsa-controller -help: %v\n%s", err, out)
	}
	defaults := helpDefaults(string(out))
	set := map[string]string{}
	for _, a := range c.Args {
		name, value, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if _, ok := defaults[name]; !ok {
			t.Errorf("the Deployment passes %s, which mcsa-controller does not define", a)
		}
		set[name] = value
	}
	for _, f := range writableFlags {
		dir, ok := set[f]
		if !ok {
			dir, ok = defaults[f]
		}
		if !ok || dir == "" {
			t.Errorf("mcsa-controller has no default for -%s and the Deployment sets none", f)
			continue
		}
		if m := mountOf(c.VolumeMounts, dir); m == nil || m.ReadOnly {
			t.Errorf("mcsa-controller writes to %s (-%s) but the root filesystem is read-only and no writable volume is mounted there: mount an emptyDir at %s (or pass -%s=<a mounted directory>)", dir, f, dir, f)
		}
	}
}

var (
	flagLine    = regexp.MustCompile(`^  -([^\s]+)`)
	defaultText = regexp.MustCompile(`\(default "?([^")]*)"?\)\s*$`)
)

// helpDefaults maps each flag of a Go flag usage text to its default ("" when none is shown).
func helpDefaults(help string) map[string]string {
	flags := map[string]string{}
	var current string
	for _, line := range strings.Split(help, "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			current = m[1]
			flags[current] = ""
			continue
		}
		if m := defaultText.FindStringSubmatch(line); m != nil && current != "" {
			flags[current] = m[1]
		}
	}
	return flags
}

// mountOf is the volume mount holding dir, if any.
func mountOf(mounts []corev1.VolumeMount, dir string) *corev1.VolumeMount {
	dir = path.Clean(dir)
	for i, m := range mounts {
		mp := path.Clean(m.MountPath)
		if dir == mp || strings.HasPrefix(dir, mp+"/") {
			return &mounts[i]
		}
	}
	return nil
}

// checkUser parses a numeric uid:gid user, which is what runAsNonRoot can verify, non-root.
func checkUser(t *testing.T, user string) (uid, gid int64) {
	t.Helper()
	u, g, _ := strings.Cut(user, ":")
	uid, err := strconv.ParseInt(u, 10, 64)
	if err != nil {
		t.Fatalf("image user %q is not numeric: the kubelet cannot check runAsNonRoot against it", user)
	}
	gid = uid
	if g != "" {
		if gid, err = strconv.ParseInt(g, 10, 64); err != nil {
			t.Fatalf("image group %q is not numeric", g)
		}
	}
	if uid == 0 {
		t.Errorf("image runs as root (%q)", user)
	}
	return uid, gid
}

// checkELF checks that bin is a static Linux executable for arch.
func checkELF(t *testing.T, bin []byte, arch string) {
	t.Helper()
	f, err := elf.NewFile(readerAt(bin))
	if err != nil {
		t.Errorf("the entrypoint is not an ELF executable: %v", err)
		return
	}
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	if want, ok := machines[arch]; !ok || f.Machine != want {
		t.Errorf("the entrypoint is built for %s, the image is %s", f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the entrypoint is dynamically linked; the image has no libc")
		}
	}
}

type readerAt []byte

func (b readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

type layerFile struct {
	hdr  *tar.Header
	data []byte
}

// layerFiles reads every layer of img into a map by path (no leading slash; later layers win).
func layerFiles(t *testing.T, img v1.Image) map[string]*layerFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*layerFile{}
	for _, l := range layers {
		func() {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			eachTarEntry(t, rc, func(h *tar.Header, tr *tar.Reader) {
				data, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				files[strings.TrimSuffix(strings.TrimPrefix(path.Clean("/"+h.Name), "/"), "/")] = &layerFile{hdr: h, data: data}
			})
		}()
	}
	return files
}

// deployment is manifests/controller/deployment.yaml of the module at root, which the plugin
// embeds.
func deployment(t *testing.T, root string) *appsv1.Deployment {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "manifests", "controller", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(b, &d); err != nil {
		t.Fatalf("controller/deployment.yaml: %v", err)
	}
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("controller/deployment.yaml has %d containers, want 1", n)
	}
	return &d
}

// TestWritableDirChecks covers the read-only-filesystem check's parts on fixed inputs, so that
// a missing mount is seen to fail.
func TestWritableDirChecks(t *testing.T) {
	help := `Usage of mcsa-controller:
  -leader-elect
    	Elect a leader.
  -webhook-cert-dir string
    	Writable directory for the webhook's serving certificate (an emptyDir in cluster). (default "/tmp/mcsa-webhook-certs")
  -zap-log-level value
    	Zap Level (default info)
`
	defaults := helpDefaults(help)
	wantDefaults := map[string]string{"leader-elect": "", "webhook-cert-dir": "/tmp/mcsa-webhook-certs", "zap-log-level": "info"}
	if len(defaults) != len(wantDefaults) {
		t.Errorf("helpDefaults: %q, want %q", defaults, wantDefaults)
	}
	for k, v := range wantDefaults {
		if got, ok := defaults[k]; !ok || got != v {
			t.Errorf("helpDefaults[%s] = %q, want %q", k, got, v)
		}
	}

	mounts := []corev1.VolumeMount{{Name: "certs", MountPath: "/tmp/mcsa-webhook-certs"}, {Name: "ro", MountPath: "/etc/ro", ReadOnly: true}}
	tests := []struct {
		dir  string
		want string // the mount's name, "" for none
	}{
		{"/tmp/mcsa-webhook-certs", "certs"},
		{"/tmp/mcsa-webhook-certs/", "certs"},
		{"/tmp/mcsa-webhook-certs/sub", "certs"},
		{"/tmp/mcsa-webhook-certs-other", ""},
		{"/tmp", ""},
		{"/etc/ro/x", "ro"},
	}
	for _, tt := range tests {
		got := ""
		if m := mountOf(mounts, tt.dir); m != nil {
			got = m.Name
		}
		if got != tt.want {
			t.Errorf("mountOf(%s) = %q, want %q", tt.dir, got, tt.want)
		}
	}
}
