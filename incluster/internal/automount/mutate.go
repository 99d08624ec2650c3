package automount

import (
	"fmt"
	"path"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// conflictError is a pod that already has, under one of the names or paths the webhook would
// use, something that is not the import's: the webhook never overwrites it.
type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }

// Mount is what PatchPod mounts for one import: the import's name and, for a federated import
// (v1alpha1.ModeFederated), the audience and lifetime of the pod's own token. Build it with
// MountFor.
type Mount struct {
	Name string
	// Federated mounts, instead of the import's secret, a projected volume of the pod's own
	// service-account token (Audience, ExpirationSeconds) and the import's ConfigMap.
	Federated         bool
	Audience          string
	ExpirationSeconds int64
}

// MountFor is the Mount of imp.
func MountFor(imp *v1alpha1.ServiceAccountImport) Mount {
	if !v1alpha1.IsFederated(imp) {
		return Mount{Name: imp.Name}
	}
	return Mount{
		Name:              imp.Name,
		Federated:         true,
		Audience:          v1alpha1.FederatedAudience(imp.Spec.ClusterName),
		ExpirationSeconds: v1alpha1.FederatedExpirationSeconds(imp),
	}
}

// defaultMode is the mode the API server defaults secret and projected volumes to.
const defaultMode int32 = 0o644

// volume is the volume the webhook adds for m: the import's secret, or for a federated import a
// projected volume of the pod's token for the remote cluster (file token) and every key of the
// import's ConfigMap (server, ca.crt, namespace, config, as), so that both kinds of import
// present the same files at the same path.
func (m Mount) volume() corev1.Volume {
	v := corev1.Volume{Name: v1alpha1.VolumeName(m.Name)}
	if !m.Federated {
		v.Secret = &corev1.SecretVolumeSource{SecretName: v1alpha1.SecretName(m.Name)}
		return v
	}
	expiration := m.ExpirationSeconds
	v.Projected = &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
		{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
			Audience: m.Audience, ExpirationSeconds: &expiration, Path: v1alpha1.SecretKeyToken}},
		{ConfigMap: &corev1.ConfigMapProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: v1alpha1.FederatedConfigMapName(m.Name)}}},
	}}
	return v
}

func (m Mount) mount() corev1.VolumeMount {
	return corev1.VolumeMount{Name: v1alpha1.VolumeName(m.Name), MountPath: v1alpha1.MountPath(m.Name), ReadOnly: true}
}

// isVolume tells whether v is exactly the volume the webhook adds for m, as the API server
// stores it (a projected volume's defaultMode defaulted).
func (m Mount) isVolume(v corev1.Volume) bool {
	want := m.volume()
	if v.Name != want.Name {
		return false
	}
	if !m.Federated {
		s := v.Secret
		return s != nil && s.SecretName == want.Secret.SecretName &&
			s.Items == nil && (s.Optional == nil || !*s.Optional) && v.VolumeSource == corev1.VolumeSource{Secret: s}
	}
	if v.Projected == nil || v.VolumeSource != (corev1.VolumeSource{Projected: v.Projected}) {
		return false
	}
	// What the API server defaults, or what means the same, compared as the webhook writes it;
	// anything else (another source, a field of the token's or ConfigMap's, their order) is not
	// the import's volume.
	p := v.Projected.DeepCopy()
	if p.DefaultMode != nil && *p.DefaultMode == defaultMode {
		p.DefaultMode = nil
	}
	for _, src := range p.Sources {
		if cm := src.ConfigMap; cm != nil && cm.Optional != nil && !*cm.Optional {
			cm.Optional = nil
		}
	}
	return equality.Semantic.DeepEqual(p, want.Projected)
}

// describe says what the volume of m holds, for conflict messages.
func (m Mount) describe() string {
	if !m.Federated {
		return fmt.Sprintf("the secret %q of ServiceAccountImport %q", v1alpha1.SecretName(m.Name), m.Name)
	}
	return fmt.Sprintf("the projected volume of federated ServiceAccountImport %q (the pod's token for audience %q expiring in %ds, and ConfigMap %q)",
		m.Name, m.Audience, m.ExpirationSeconds, v1alpha1.FederatedConfigMapName(m.Name))
}

// PatchPod returns the JSON patch that gives pod a read-only volume for each import, mounted
// in every container and init container at the import's path (v1alpha1.MountPath): the
// import's secret, or for a federated import a projected volume of the pod's own
// service-account token for the remote cluster and of the import's ConfigMap (Mount.Federated).
// A federated import gets that token even in a pod that does not automount its service
// account's token: it is bound to the remote cluster's audience, and only this volume holds it.
//
// What is already there (a previous pass) is kept, so a second pass returns no operation; a
// volume or mount that takes the import's name or path but is not exactly the import's is a
// conflictError.
//
// The patch only adds: it never rewrites the pod from its Go form, which would drop fields
// that the API server knows and this build does not.
func PatchPod(pod *corev1.Pod, imports []Mount) ([]jsonpatch.JsonPatchOperation, error) {
	var ops []jsonpatch.JsonPatchOperation

	var volumes []any
	for _, m := range imports {
		found := false
		for _, v := range pod.Spec.Volumes {
			if v.Name != v1alpha1.VolumeName(m.Name) {
				continue
			}
			if !m.isVolume(v) {
				return nil, &conflictError{fmt.Sprintf(
					"the pod already has a volume named %q that is not %s: rename that volume",
					v.Name, m.describe())}
			}
			found = true
		}
		if !found {
			volumes = append(volumes, m.volume())
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

func missingMounts(c corev1.Container, field string, imports []Mount) ([]any, error) {
	var mounts []any
	for _, m := range imports {
		want := m.mount()
		found := false
		for _, have := range c.VolumeMounts {
			if path.Clean(have.MountPath) != want.MountPath {
				continue
			}
			if have.Name != want.Name || !have.ReadOnly || have.SubPath != "" || have.SubPathExpr != "" {
				return nil, &conflictError{fmt.Sprintf(
					"%s %q already mounts volume %q at %s, where ServiceAccountImport %q goes: remove that mount",
					strings.TrimSuffix(field, "s"), c.Name, have.Name, want.MountPath, m.Name)}
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
