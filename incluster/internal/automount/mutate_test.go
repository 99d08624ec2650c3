package automount

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
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

// mounted is what a pod looks like with the imports mounted after what it had.
func mounted(pod *corev1.Pod, imports ...string) *corev1.Pod {
	out := pod.DeepCopy()
	for _, name := range imports {
		out.Spec.Volumes = append(out.Spec.Volumes, importVolume(name))
		for i := range out.Spec.InitContainers {
			out.Spec.InitContainers[i].VolumeMounts = append(out.Spec.InitContainers[i].VolumeMounts, importMount(name))
		}
		for i := range out.Spec.Containers {
			out.Spec.Containers[i].VolumeMounts = append(out.Spec.Containers[i].VolumeMounts, importMount(name))
		}
	}
	return out
}

// applyPatch runs PatchPod and applies its operations to the pod's JSON, as the API server does.
func applyPatch(t *testing.T, pod *corev1.Pod, imports []string) (*corev1.Pod, int, error) {
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

	for _, tc := range []struct {
		name    string
		pod     *corev1.Pod
		imports []string
		want    *corev1.Pod
		wantOps int
		// conflict, when set, is a part of the expected conflict message.
		conflict string
	}{
		{name: "no import", pod: plain, imports: nil, want: plain, wantOps: 0},
		{name: "one import, bare pod", pod: plain, imports: []string{"a"}, want: mounted(plain, "a"), wantOps: 2},
		{
			name:    "three imports next to existing volumes and mounts",
			pod:     podWith([]string{"app", "sidecar"}, nil, []corev1.Volume{otherVolume}, otherMount),
			imports: []string{"a", "b", "c"},
			want:    mounted(podWith([]string{"app", "sidecar"}, nil, []corev1.Volume{otherVolume}, otherMount), "a", "b", "c"),
			wantOps: 9,
		},
		{
			name:    "init containers too",
			pod:     podWith([]string{"app"}, []string{"setup", "native-sidecar"}, nil),
			imports: []string{"a", "b"},
			want:    mounted(podWith([]string{"app"}, []string{"setup", "native-sidecar"}, nil), "a", "b"),
			wantOps: 4,
		},
		{name: "longest name, dotted", pod: plain, imports: []string{long}, want: mounted(plain, long), wantOps: 2},
		{name: "already mounted (reinvocation)", pod: mounted(plain, "a", "b"), imports: []string{"a", "b"}, want: mounted(plain, "a", "b"), wantOps: 0},
		{
			name: "container added by a later webhook, then reinvocation",
			pod: func() *corev1.Pod {
				p := mounted(plain, "a")
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "injected", Image: "proxy"})
				return p
			}(),
			imports: []string{"a"},
			want: func() *corev1.Pod {
				p := mounted(plain, "a")
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "injected", Image: "proxy", VolumeMounts: []corev1.VolumeMount{importMount("a")}})
				return p
			}(),
			wantOps: 1,
		},
		{
			name:     "volume of the same name, other secret",
			pod:      podWith([]string{"app"}, nil, []corev1.Volume{{Name: v1alpha1.VolumeName("a"), VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "mine"}}}}),
			imports:  []string{"a"},
			conflict: `volume named "mcsa-a"`,
		},
		{
			name:     "volume of the same name, not a secret",
			pod:      podWith([]string{"app"}, nil, []corev1.Volume{{Name: v1alpha1.VolumeName("a"), VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}),
			imports:  []string{"a"},
			conflict: `volume named "mcsa-a"`,
		},
		{
			name: "same secret but optional",
			pod: podWith([]string{"app"}, nil, []corev1.Volume{{Name: v1alpha1.VolumeName("a"), VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: v1alpha1.SecretName("a"), Optional: ptr.To(true)}}}}),
			imports:  []string{"a"},
			conflict: `volume named "mcsa-a"`,
		},
		{
			name:     "another volume mounted at the import's path",
			pod:      podWith([]string{"app"}, nil, []corev1.Volume{otherVolume}, corev1.VolumeMount{Name: "data", MountPath: v1alpha1.MountPath("a") + "/"}),
			imports:  []string{"a"},
			conflict: `container "app" already mounts volume "data"`,
		},
		{
			name:     "the import's volume mounted writable in an init container",
			pod:      podWith(nil, []string{"setup"}, []corev1.Volume{importVolume("a")}, corev1.VolumeMount{Name: v1alpha1.VolumeName("a"), MountPath: v1alpha1.MountPath("a")}),
			imports:  []string{"a"},
			conflict: `initContainer "setup" already mounts volume "mcsa-a"`,
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

func mustJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
