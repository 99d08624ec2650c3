package automount

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// podWith is a pod with the given containers and init containers, each with the given mounts.
func podWith(containers, initContainers []string, volumes []corev1.Volume, mounts ...corev1.VolumeMount) *corev1.Pod {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Volumes: volumes}}
	for _, c := range initContainers {
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{Name: c, Image: "busybox", VolumeMounts: mounts})
	}
	for _, c := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: c, Image: "busybox", VolumeMounts: mounts})
	}
	return pod
}

// tokens are the Mounts of token imports of the given names.
func tokens(names ...string) []Mount {
	out := make([]Mount, len(names))
	for i, name := range names {
		out[i] = Mount{Name: name}
	}
	return out
}

// federated is the Mount of a federated import of cluster2 with the default token lifetime.
func federated(name string) Mount {
	return MountFor(&v1alpha1.ServiceAccountImport{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Mode: v1alpha1.ModeFederated},
	})
}

// mounted is what a pod looks like with the imports mounted after what it had.
func mounted(pod *corev1.Pod, imports ...Mount) *corev1.Pod {
	out := pod.DeepCopy()
	for _, m := range imports {
		out.Spec.Volumes = append(out.Spec.Volumes, m.volume())
		for i := range out.Spec.InitContainers {
			out.Spec.InitContainers[i].VolumeMounts = append(out.Spec.InitContainers[i].VolumeMounts, m.mount())
		}
		for i := range out.Spec.Containers {
			out.Spec.Containers[i].VolumeMounts = append(out.Spec.Containers[i].VolumeMounts, m.mount())
		}
	}
	return out
}

// applyPatch runs PatchPod and applies its operations to the pod's JSON, as the API server does.
func applyPatch(t *testing.T, pod *corev1.Pod, imports []Mount) (*corev1.Pod, int, error) {
	t.Helper()
	ops, err := PatchPod(pod, imports)
	if err != nil {
		return nil, 0, err
	}
	raw, _ := json.Marshal(pod)
	patchJSON, _ := json.Marshal(ops)
	patch, err := jsonpatch.DecodePatch(patchJSON)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := patch.Apply(raw)
	if err != nil {
		t.Fatalf("applying %s: %v", patchJSON, err)
	}
	out := &corev1.Pod{}
	if err := json.Unmarshal(patched, out); err != nil {
		t.Fatal(err)
	}
	return out, len(ops), nil
}

func TestPatchPod(t *testing.T) {
	long := strings.Repeat("x", 200) + "." + strings.Repeat("y", 52) // 253 characters
	otherVolume := corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	otherMount := corev1.VolumeMount{Name: "data", MountPath: "/data"}
	plain := podWith([]string{"app"}, nil, nil)
	noAutomount := podWith([]string{"app"}, nil, nil)
	noAutomount.Spec.AutomountServiceAccountToken = ptr.To(false)
	// projected is the volume of federated import name, changed.
	projected := func(name string, change func(*corev1.ProjectedVolumeSource)) corev1.Volume {
		v := federated(name).volume()
		change(v.Projected)
		return v
	}
	notOptional := podWith([]string{"app"}, nil, []corev1.Volume{projected("f", func(p *corev1.ProjectedVolumeSource) {
		p.Sources[1].ConfigMap.Optional = ptr.To(false)
	})}, federated("f").mount())

	for _, tc := range []struct {
		name    string
		pod     *corev1.Pod
		imports []Mount
		want    *corev1.Pod
		wantOps int
		// conflict, when set, is a part of the expected conflict message.
		conflict string
	}{
		{name: "no import", pod: plain, imports: nil, want: plain, wantOps: 0},
		{name: "one import, bare pod", pod: plain, imports: tokens("a"), want: mounted(plain, tokens("a")...), wantOps: 2},
		{
			name:    "three imports next to existing volumes and mounts",
			pod:     podWith([]string{"app", "sidecar"}, nil, []corev1.Volume{otherVolume}, otherMount),
			imports: tokens("a", "b", "c"),
			want:    mounted(podWith([]string{"app", "sidecar"}, nil, []corev1.Volume{otherVolume}, otherMount), tokens("a", "b", "c")...),
			wantOps: 9,
		},
		{
			name:    "init containers too",
			pod:     podWith([]string{"app"}, []string{"setup", "native-sidecar"}, nil),
			imports: tokens("a", "b"),
			want:    mounted(podWith([]string{"app"}, []string{"setup", "native-sidecar"}, nil), tokens("a", "b")...),
			wantOps: 4,
		},
		{name: "longest name, dotted", pod: plain, imports: tokens(long), want: mounted(plain, tokens(long)...), wantOps: 2},
		{name: "already mounted (reinvocation)", pod: mounted(plain, tokens("a", "b")...), imports: tokens("a", "b"), want: mounted(plain, tokens("a", "b")...), wantOps: 0},
		{
			name: "container added by a later webhook, then reinvocation",
			pod: func() *corev1.Pod {
				p := mounted(plain, tokens("a")...)
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "injected", Image: "proxy"})
				return p
			}(),
			imports: tokens("a"),
			want: func() *corev1.Pod {
				p := mounted(plain, tokens("a")...)
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "injected", Image: "proxy", VolumeMounts: []corev1.VolumeMount{Mount{Name: "a"}.mount()}})
				return p
			}(),
			wantOps: 1,
		},
		{
			name:     "volume of the same name, other secret",
			pod:      podWith([]string{"app"}, nil, []corev1.Volume{{Name: v1alpha1.VolumeName("a"), VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "mine"}}}}),
			imports:  tokens("a"),
			conflict: `volume named "mcsa-a"`,
		},
		{
			name:     "volume of the same name, not a secret",
			pod:      podWith([]string{"app"}, nil, []corev1.Volume{{Name: v1alpha1.VolumeName("a"), VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}),
			imports:  tokens("a"),
			conflict: `volume named "mcsa-a"`,
		},
		{
			name: "same secret but optional",
			pod: podWith([]string{"app"}, nil, []corev1.Volume{{Name: v1alpha1.VolumeName("a"), VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: v1alpha1.SecretName("a"), Optional: ptr.To(true)}}}}),
			imports:  tokens("a"),
			conflict: `volume named "mcsa-a"`,
		},
		{
			name:     "another volume mounted at the import's path",
			pod:      podWith([]string{"app"}, nil, []corev1.Volume{otherVolume}, corev1.VolumeMount{Name: "data", MountPath: v1alpha1.MountPath("a") + "/"}),
			imports:  tokens("a"),
			conflict: `container "app" already mounts volume "data"`,
		},
		{
			name:     "the import's volume mounted writable in an init container",
			pod:      podWith(nil, []string{"setup"}, []corev1.Volume{Mount{Name: "a"}.volume()}, corev1.VolumeMount{Name: v1alpha1.VolumeName("a"), MountPath: v1alpha1.MountPath("a")}),
			imports:  tokens("a"),
			conflict: `initContainer "setup" already mounts volume "mcsa-a"`,
		},
		{name: "federated import, bare pod", pod: plain, imports: []Mount{federated("f")}, want: mounted(plain, federated("f")), wantOps: 2},
		{
			// The pod does not automount its own service account's token: the federated
			// import's token is for the remote cluster only, and mounted all the same.
			name:    "federated import, pod without automounted token",
			pod:     noAutomount,
			imports: []Mount{federated("f")},
			want:    mounted(noAutomount, federated("f")),
			wantOps: 2,
		},
		{
			name:    "token and federated imports, init containers and existing volumes",
			pod:     podWith([]string{"app", "sidecar"}, []string{"setup"}, []corev1.Volume{otherVolume}, otherMount),
			imports: []Mount{{Name: "a"}, federated("f"), federated(long)},
			want: mounted(podWith([]string{"app", "sidecar"}, []string{"setup"}, []corev1.Volume{otherVolume}, otherMount),
				Mount{Name: "a"}, federated("f"), federated(long)),
			wantOps: 12,
		},
		{
			name:    "federated import already mounted, as the API server stores it (reinvocation)",
			pod:     defaulted(mounted(plain, Mount{Name: "a"}, federated("f"))),
			imports: []Mount{{Name: "a"}, federated("f")},
			want:    defaulted(mounted(plain, Mount{Name: "a"}, federated("f"))),
			wantOps: 0,
		},
		{
			name:     "federated import, the secret volume of a token import in its place",
			pod:      podWith([]string{"app"}, nil, []corev1.Volume{Mount{Name: "f"}.volume()}),
			imports:  []Mount{federated("f")},
			conflict: `volume named "mcsa-f" that is not the projected volume of federated ServiceAccountImport "f" (the pod's token for audience "kubectl-mcsa.admiralty.io/cluster2" expiring in 3600s, and ConfigMap "f-federated")`,
		},
		{
			name:     "token import, the projected volume of a federated import in its place",
			pod:      podWith([]string{"app"}, nil, []corev1.Volume{federated("a").volume()}),
			imports:  tokens("a"),
			conflict: `volume named "mcsa-a" that is not the secret "a-token" of ServiceAccountImport "a"`,
		},
		{
			name: "federated import, token of another audience",
			pod: podWith([]string{"app"}, nil, []corev1.Volume{projected("f", func(p *corev1.ProjectedVolumeSource) {
				p.Sources[0].ServiceAccountToken.Audience = "https://kubernetes.default.svc"
			})}),
			imports:  []Mount{federated("f")},
			conflict: `volume named "mcsa-f"`,
		},
		{
			name: "federated import, token of another lifetime",
			pod: podWith([]string{"app"}, nil, []corev1.Volume{projected("f", func(p *corev1.ProjectedVolumeSource) {
				p.Sources[0].ServiceAccountToken.ExpirationSeconds = ptr.To[int64](86400)
			})}),
			imports:  []Mount{federated("f")},
			conflict: `volume named "mcsa-f"`,
		},
		{
			name:     "federated import, token at another path",
			pod:      podWith([]string{"app"}, nil, []corev1.Volume{projected("f", func(p *corev1.ProjectedVolumeSource) { p.Sources[0].ServiceAccountToken.Path = "other" })}),
			imports:  []Mount{federated("f")},
			conflict: `volume named "mcsa-f"`,
		},
		{
			name:     "federated import, another ConfigMap",
			pod:      podWith([]string{"app"}, nil, []corev1.Volume{projected("f", func(p *corev1.ProjectedVolumeSource) { p.Sources[1].ConfigMap.Name = "mine" })}),
			imports:  []Mount{federated("f")},
			conflict: `volume named "mcsa-f"`,
		},
		{
			name:     "federated import, optional ConfigMap",
			pod:      podWith([]string{"app"}, nil, []corev1.Volume{projected("f", func(p *corev1.ProjectedVolumeSource) { p.Sources[1].ConfigMap.Optional = ptr.To(true) })}),
			imports:  []Mount{federated("f")},
			conflict: `volume named "mcsa-f"`,
		},
		{
			name: "federated import, some keys of the ConfigMap only",
			pod: podWith([]string{"app"}, nil, []corev1.Volume{projected("f", func(p *corev1.ProjectedVolumeSource) {
				p.Sources[1].ConfigMap.Items = []corev1.KeyToPath{{Key: v1alpha1.SecretKeyServer, Path: v1alpha1.SecretKeyServer}}
			})}),
			imports:  []Mount{federated("f")},
			conflict: `volume named "mcsa-f"`,
		},
		{
			name: "federated import, one more source",
			pod: podWith([]string{"app"}, nil, []corev1.Volume{projected("f", func(p *corev1.ProjectedVolumeSource) {
				p.Sources = append(p.Sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "mine"}}})
			})}),
			imports:  []Mount{federated("f")},
			conflict: `volume named "mcsa-f"`,
		},
		{
			name: "federated import, sources swapped",
			pod: podWith([]string{"app"}, nil, []corev1.Volume{projected("f", func(p *corev1.ProjectedVolumeSource) {
				p.Sources[0], p.Sources[1] = p.Sources[1], p.Sources[0]
			})}),
			imports:  []Mount{federated("f")},
			conflict: `volume named "mcsa-f"`,
		},
		{
			name: "federated import, token file of another owner",
			pod: podWith([]string{"app"}, nil, []corev1.Volume{projected("f", func(p *corev1.ProjectedVolumeSource) {
				p.Sources[0].ServiceAccountToken.User = ptr.To[int64](0)
			})}),
			imports:  []Mount{federated("f")},
			conflict: `volume named "mcsa-f"`,
		},
		{
			name:    "federated import already mounted, ConfigMap explicitly not optional",
			pod:     notOptional,
			imports: []Mount{federated("f")},
			want:    notOptional,
		},
		{
			name:     "federated import, files world-writable",
			pod:      podWith([]string{"app"}, nil, []corev1.Volume{projected("f", func(p *corev1.ProjectedVolumeSource) { p.DefaultMode = ptr.To[int32](0o666) })}),
			imports:  []Mount{federated("f")},
			conflict: `volume named "mcsa-f"`,
		},
		{
			name:     "federated import, the volume mounted in a sub-path",
			pod:      podWith([]string{"app"}, nil, []corev1.Volume{federated("f").volume()}, corev1.VolumeMount{Name: v1alpha1.VolumeName("f"), MountPath: v1alpha1.MountPath("f"), ReadOnly: true, SubPath: "token"}),
			imports:  []Mount{federated("f")},
			conflict: `container "app" already mounts volume "mcsa-f"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, nOps, err := applyPatch(t, tc.pod, tc.imports)
			if tc.conflict != "" {
				var conflict *conflictError
				if !errors.As(err, &conflict) || !strings.Contains(err.Error(), tc.conflict) {
					t.Fatalf("error = %v, want a conflict naming %s", err, tc.conflict)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if nOps != tc.wantOps {
				t.Errorf("%d operations, want %d", nOps, tc.wantOps)
			}
			if !equality.Semantic.DeepEqual(got, tc.want) {
				t.Fatalf("patched pod:\n%s\nwant:\n%s", mustJSON(got), mustJSON(tc.want))
			}
			for _, v := range got.Spec.Volumes {
				if errs := validation.IsDNS1123Label(v.Name); len(errs) > 0 {
					t.Errorf("volume name %q: %v", v.Name, errs)
				}
			}
			// A second pass, as on reinvocation, changes nothing.
			if again, n, err := applyPatch(t, got, tc.imports); err != nil || n != 0 || !equality.Semantic.DeepEqual(again, got) {
				t.Fatalf("second pass: %d operations, error %v", n, err)
			}
		})
	}
}

// defaulted is pod as the API server stores it: secret and projected volumes have their
// default mode.
func defaulted(pod *corev1.Pod) *corev1.Pod {
	out := pod.DeepCopy()
	for _, v := range out.Spec.Volumes {
		switch {
		case v.Secret != nil && v.Secret.DefaultMode == nil:
			v.Secret.DefaultMode = ptr.To(defaultMode)
		case v.Projected != nil && v.Projected.DefaultMode == nil:
			v.Projected.DefaultMode = ptr.To(defaultMode)
		}
	}
	return out
}

// TestFederatedVolume checks the projected volume of a federated import field by field, and
// the lifetime of its token.
func TestFederatedVolume(t *testing.T) {
	for _, tc := range []struct {
		name       string
		expiration *int64
		want       int64
	}{
		{"default lifetime", nil, v1alpha1.DefaultFederatedExpirationSeconds},
		{"shorter lifetime", ptr.To[int64](1200), 1200},
		{"a day, capped", ptr.To[int64](v1alpha1.MaxExpirationSeconds), v1alpha1.MaxFederatedExpirationSeconds},
	} {
		t.Run(tc.name, func(t *testing.T) {
			imp := &v1alpha1.ServiceAccountImport{
				ObjectMeta: metav1.ObjectMeta{Name: "f"},
				Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: "pod-lister",
					Mode: v1alpha1.ModeFederated, ExpirationSeconds: tc.expiration, Audiences: []string{"ignored"}},
			}
			got, _, err := applyPatch(t, podWith([]string{"app"}, nil, nil), []Mount{MountFor(imp)})
			if err != nil {
				t.Fatal(err)
			}
			want := corev1.Volume{Name: "mcsa-f", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					Audience: "kubectl-mcsa.admiralty.io/cluster2", ExpirationSeconds: ptr.To(tc.want), Path: "token"}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "f-federated"}}},
			}}}}
			if len(got.Spec.Volumes) != 1 || !equality.Semantic.DeepEqual(got.Spec.Volumes[0], want) {
				t.Fatalf("volumes:\n%s\nwant:\n%s", mustJSON(got.Spec.Volumes), mustJSON(want))
			}
			wantMount := corev1.VolumeMount{Name: "mcsa-f", MountPath: v1alpha1.MountPathRoot + "/f", ReadOnly: true}
			if m := got.Spec.Containers[0].VolumeMounts; len(m) != 1 || !equality.Semantic.DeepEqual(m[0], wantMount) {
				t.Fatalf("mounts %+v, want %+v", m, wantMount)
			}
		})
	}
	if m := MountFor(&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "t"},
		Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Mode: v1alpha1.ModeToken}}); m != (Mount{Name: "t"}) {
		t.Errorf("Mount of a token import: %+v", m)
	}
}

func mustJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
