package automount

import (
	"fmt"
	"path"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// conflictError is a pod that already has, under one of the names or paths the webhook would
// use, something that is not the import's: the webhook never overwrites it.
type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }

// importVolume is the volume of an import's secret.
func importVolume(name string) corev1.Volume {
	return corev1.Volume{
		Name:         v1alpha1.VolumeName(name),
		VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: v1alpha1.SecretName(name)}},
	}
}

func importMount(name string) corev1.VolumeMount {
	return corev1.VolumeMount{Name: v1alpha1.VolumeName(name), MountPath: v1alpha1.MountPath(name), ReadOnly: true}
}

// isImportVolume tells whether v is exactly the volume the webhook adds for an import.
func isImportVolume(v corev1.Volume, name string) bool {
	want := importVolume(name)
	s := v.Secret
	return v.Name == want.Name && s != nil && s.SecretName == want.Secret.SecretName &&
		s.Items == nil && (s.Optional == nil || !*s.Optional) && v.VolumeSource == corev1.VolumeSource{Secret: s}
}

// PatchPod returns the JSON patch that gives pod a read-only volume of each import's secret,
// mounted in every container and init container. What is already there (a previous pass) is
// kept, so a second pass returns no operation; a volume or mount that takes the import's name
// or path but is not the import's is a conflictError.
//
// The patch only adds: it never rewrites the pod from its Go form, which would drop fields
// that the API server knows and this build does not.
func PatchPod(pod *corev1.Pod, imports []string) ([]jsonpatch.JsonPatchOperation, error) {
	var ops []jsonpatch.JsonPatchOperation

	var volumes []any
	for _, name := range imports {
		found := false
		for _, v := range pod.Spec.Volumes {
			if v.Name != v1alpha1.VolumeName(name) {
				continue
			}
			if !isImportVolume(v, name) {
				return nil, &conflictError{fmt.Sprintf(
					"the pod already has a volume named %q that is not the secret %q of ServiceAccountImport %q: rename that volume",
					v.Name, v1alpha1.SecretName(name), name)}
			}
			found = true
		}
		if !found {
			volumes = append(volumes, importVolume(name))
		}
	}
	ops = appendOps(ops, "/spec/volumes", len(pod.Spec.Volumes), volumes)

	for _, list := range []struct {
		field      string
		containers []corev1.Container
	}{{"initContainers", pod.Spec.InitContainers}, {"containers", pod.Spec.Containers}} {
		for i, c := range list.containers {
			mounts, err := missingMounts(c, list.field, imports)
			if err != nil {
				return nil, err
			}
			ops = appendOps(ops, fmt.Sprintf("/spec/%s/%d/volumeMounts", list.field, i), len(c.VolumeMounts), mounts)
		}
	}
	return ops, nil
}

func missingMounts(c corev1.Container, field string, imports []string) ([]any, error) {
	var mounts []any
	for _, name := range imports {
		want := importMount(name)
		found := false
		for _, m := range c.VolumeMounts {
			if path.Clean(m.MountPath) != want.MountPath {
				continue
			}
			if m.Name != want.Name || !m.ReadOnly || m.SubPath != "" || m.SubPathExpr != "" {
				return nil, &conflictError{fmt.Sprintf(
					"%s %q already mounts volume %q at %s, where ServiceAccountImport %q goes: remove that mount",
					strings.TrimSuffix(field, "s"), c.Name, m.Name, want.MountPath, name)}
			}
			found = true
		}
		if !found {
			mounts = append(mounts, want)
		}
	}
	return mounts, nil
}

// appendOps adds items to the JSON array at path, holding n items: one operation creating the
// array when it is empty or absent, else one appending each item.
func appendOps(ops []jsonpatch.JsonPatchOperation, path string, n int, items []any) []jsonpatch.JsonPatchOperation {
	if len(items) == 0 {
		return ops
	}
	if n == 0 {
		return append(ops, jsonpatch.NewOperation("add", path, items))
	}
	for _, item := range items {
		ops = append(ops, jsonpatch.NewOperation("add", path+"/-", item))
	}
	return ops
}
