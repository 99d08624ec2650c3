// Package diagnose finds which link of the chain is broken: what a pod asked for and got
// (Mounts), and the health of an installation and its remote clusters (Doctor). Every problem
// comes with its remedy.
package diagnose

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// Problem is something wrong, with what to do about it.
type Problem struct {
	Import  string `json:"import,omitempty"`
	Message string `json:"message"`
	Remedy  string `json:"remedy,omitempty"`
}

// ContainerMount says whether one container has an import's mount.
type ContainerMount struct {
	Name     string `json:"name"`
	Init     bool   `json:"init,omitempty"`
	Mounted  bool   `json:"mounted"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// ImportMount is one import a pod asks for, and what it got. A token import mounts its Secret;
// a federated one (Mode Federated) mounts a projected volume of the pod's own token (Audience)
// and its ConfigMap, and has no secret (Secret is empty) nor token expiry (the kubelet rotates
// the pod's token).
type ImportMount struct {
	Name   string `json:"name"`
	Exists bool   `json:"exists"`
	// Mode is Token or Federated: the import's, else what the pod mounts.
	Mode             string           `json:"mode,omitempty"`
	Ready            string           `json:"ready,omitempty"`
	Reason           string           `json:"reason,omitempty"`
	Expires          *time.Time       `json:"expires,omitempty"`
	Secret           string           `json:"secret"`
	SecretPresent    bool             `json:"secretPresent"`
	ConfigMap        string           `json:"configMap,omitempty"`
	ConfigMapPresent bool             `json:"configMapPresent,omitempty"`
	Audience         string           `json:"audience,omitempty"`
	Volume           string           `json:"volume,omitempty"`
	Path             string           `json:"path"`
	Containers       []ContainerMount `json:"containers"`
}

// MountsReport is what `kubectl mcsa mounts POD` shows.
type MountsReport struct {
	Pod       string        `json:"pod"`
	Namespace string        `json:"namespace"`
	Imports   []ImportMount `json:"imports"`
	Problems  []Problem     `json:"problems"`
}

// Mounts inspects what pod asked for and got.
func Mounts(ctx context.Context, cl *kube.Clients, namespace, podName string, now time.Time) (*MountsReport, error) {
	pod, err := cl.Kube.CoreV1().Pods(namespace).Get(ctx, podName, metav1.GetOptions{})
	if err != nil {
		return nil, cl.APIError(err)
	}
	r := &MountsReport{Pod: pod.Name, Namespace: pod.Namespace, Imports: []ImportMount{}, Problems: []Problem{}}
	names, err := v1alpha1.ParseImportNames(pod.Annotations[v1alpha1.ImportNameKey])
	if err != nil {
		r.Problems = append(r.Problems, Problem{Message: err.Error(), Remedy: "fix the annotation of the pod's template and recreate it"})
		return r, nil
	}
	if len(names) == 0 {
		r.Problems = append(r.Problems, Problem{
			Message: "the pod asks for no import",
			Remedy:  fmt.Sprintf("annotate its template with %s: IMPORT[,IMPORT…] and recreate it", v1alpha1.ImportNameKey),
		})
		return r, nil
	}
	client := &imports.Client{Clients: cl}
	webhookCreated := webhookCreation(ctx, cl)
	for _, name := range names {
		im := ImportMount{Name: name, Path: v1alpha1.MountPath(name)}
		problem := func(msg, remedy string) {
			r.Problems = append(r.Problems, Problem{Import: name, Message: msg, Remedy: remedy})
		}
		seeWhy := fmt.Sprintf("see why with `kubectl mcsa get %s -n %s -o wide%s`", name, namespace, cl.ContextFlag())
		sai, err := client.Get(ctx, namespace, name)
		switch {
		case err == nil:
			im.Exists = true
			if c := imports.Ready(sai); c != nil {
				im.Ready, im.Reason = string(c.Status), c.Reason
				if c.Status != metav1.ConditionTrue {
					problem(fmt.Sprintf("import not ready: %s: %s", c.Reason, c.Message), "")
				}
			} else {
				im.Ready = "Unknown"
				problem("the importer has not reported on the import", fmt.Sprintf("check the importer with `kubectl mcsa doctor%s`", cl.ContextFlag()))
			}
		case apierrors.IsNotFound(err):
			sai = nil
			problem("import not found in namespace "+namespace,
				fmt.Sprintf("kubectl mcsa import %s --cluster CLUSTER --remote-namespace NAMESPACE --service-account NAME -n %s%s", name, namespace, cl.ContextFlag()))
		default:
			return nil, err
		}
		secretVolume, projectedVolume := importVolumes(pod, name)
		// The import's mode; without the import, what the pod mounts.
		federated := projectedVolume != nil && secretVolume == nil
		if sai != nil {
			federated = v1alpha1.IsFederated(sai)
		}
		mc := mountCheck{cl: cl, namespace: namespace, im: &im, sai: sai, secretVolume: secretVolume, projectedVolume: projectedVolume, problem: problem, seeWhy: seeWhy}
		if federated {
			err = mc.federated(ctx)
		} else {
			err = mc.token(ctx, now)
		}
		if err != nil {
			return nil, err
		}
		if im.Volume == "" {
			if webhookCreated != nil && pod.CreationTimestamp.Before(webhookCreated) {
				problem("no volume: the pod was created before the webhook was installed", "recreate the pod (delete it if a controller manages it)")
			} else {
				problem("no volume: the webhook did not mount the import", fmt.Sprintf("check the webhook with `kubectl mcsa doctor%s`, then recreate the pod", cl.ContextFlag()))
			}
		}
		check := func(c corev1.Container, init bool) {
			cm := ContainerMount{Name: c.Name, Init: init}
			for _, m := range c.VolumeMounts {
				if m.MountPath == im.Path && (im.Volume == "" || m.Name == im.Volume) {
					cm.Mounted, cm.ReadOnly = true, m.ReadOnly
				}
			}
			if !cm.Mounted && im.Volume != "" {
				kind := "container"
				if init {
					kind = "init container"
				}
				problem(fmt.Sprintf("%s %s lacks the mount at %s", kind, c.Name, im.Path), "recreate the pod so that the webhook mounts it in every container")
			}
			im.Containers = append(im.Containers, cm)
		}
		for _, c := range pod.Spec.InitContainers {
			check(c, true)
		}
		for _, c := range pod.Spec.Containers {
			check(c, false)
		}
		r.Imports = append(r.Imports, im)
	}
	return r, nil
}

// recreate is the remedy for a volume that is not what the webhook mounts for the import now.
const recreate = "recreate the pod so that the webhook mounts the import as it is now (delete it if a controller manages it)"

// importVolumes finds the pod's volume of import name: a volume of its secret (a token
// import's), or a projected volume named after it or projecting its ConfigMap (a federated
// import's).
func importVolumes(pod *corev1.Pod, name string) (secret, projected *corev1.Volume) {
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		switch {
		case v.Secret != nil && v.Secret.SecretName == v1alpha1.SecretName(name):
			secret = v
		case v.Projected != nil && projected == nil && (v.Name == v1alpha1.VolumeName(name) || projectsConfigMap(v.Projected, v1alpha1.FederatedConfigMapName(name))):
			projected = v
		}
	}
	return secret, projected
}

func projectsConfigMap(p *corev1.ProjectedVolumeSource, name string) bool {
	for _, src := range p.Sources {
		if src.ConfigMap != nil && src.ConfigMap.Name == name {
			return true
		}
	}
	return false
}

// mountCheck checks one import of a pod.
type mountCheck struct {
	cl        *kube.Clients
	namespace string
	im        *ImportMount
	// sai is the import, nil if there is none.
	sai *v1alpha1.ServiceAccountImport
	// secretVolume and projectedVolume are the pod's volumes that look like the import's.
	secretVolume, projectedVolume *corev1.Volume
	problem                       func(msg, remedy string)
	// seeWhy is the remedy of an object the importer has not written.
	seeWhy string
}

// token checks a token import: its token's expiry, its secret, and the pod's volume of it.
func (c *mountCheck) token(ctx context.Context, now time.Time) error {
	cl, im, sai, problem := c.cl, c.im, c.sai, c.problem
	im.Mode = string(v1alpha1.ModeToken)
	im.Secret = v1alpha1.SecretName(im.Name)
	if sai != nil {
		if t := sai.Status.ExpirationTimestamp; t != nil {
			exp := t.Time
			im.Expires = &exp
			if exp.Before(now) {
				problem(fmt.Sprintf("token expired %s ago", duration.HumanDuration(now.Sub(exp))),
					fmt.Sprintf("kubectl mcsa rotate %s -n %s%s --wait", im.Name, c.namespace, cl.ContextFlag()))
			}
		}
	}
	if _, err := cl.Kube.CoreV1().Secrets(c.namespace).Get(ctx, im.Secret, metav1.GetOptions{}); err == nil {
		im.SecretPresent = true
	} else if apierrors.IsNotFound(err) {
		if im.Exists {
			problem("secret "+im.Secret+" not written yet: the kubelet waits for it and the pod cannot start", c.seeWhy)
		}
	} else {
		return cl.APIError(err)
	}
	switch {
	case c.secretVolume != nil:
		im.Volume = c.secretVolume.Name
	case c.projectedVolume != nil:
		im.Volume = c.projectedVolume.Name
		problem(fmt.Sprintf("volume %s is a federated import's projected volume, but the import is a token import: the pod lacks its token", im.Volume), recreate)
	}
	return nil
}

// mountsFederated checks a federated import: its ConfigMap, and the pod's projected volume of
// its own token, for the remote cluster's audience, and of that ConfigMap. It has no secret,
// and its token no expiry to report: the kubelet rotates the pod's token.
func (c *mountCheck) federated(ctx context.Context) error {
	cl, im, sai, problem := c.cl, c.im, c.sai, c.problem
	im.Mode = string(v1alpha1.ModeFederated)
	im.ConfigMap = v1alpha1.FederatedConfigMapName(im.Name)
	if _, err := cl.Kube.CoreV1().ConfigMaps(c.namespace).Get(ctx, im.ConfigMap, metav1.GetOptions{}); err == nil {
		im.ConfigMapPresent = true
	} else if apierrors.IsNotFound(err) {
		if im.Exists {
			problem("ConfigMap "+im.ConfigMap+" not written yet: the kubelet waits for it and the pod cannot start", c.seeWhy)
		}
	} else {
		return cl.APIError(err)
	}
	v := c.projectedVolume
	if v == nil {
		if s := c.secretVolume; s != nil {
			im.Volume = s.Name
			problem(fmt.Sprintf("volume %s mounts secret %s, as for a token import, but the import is federated and has no secret: the pod lacks its token for the remote cluster",
				s.Name, s.Secret.SecretName), recreate)
		}
		return nil
	}
	im.Volume = v.Name
	var token *corev1.ServiceAccountTokenProjection
	for _, src := range v.Projected.Sources {
		if src.ServiceAccountToken != nil && token == nil {
			token = src.ServiceAccountToken
		}
	}
	if token == nil {
		problem(fmt.Sprintf("volume %s projects no service-account token: the pod cannot authenticate to the remote cluster", v.Name), recreate)
	} else {
		im.Audience = token.Audience
		if sai != nil {
			if want := v1alpha1.FederatedAudience(sai.Spec.ClusterName); token.Audience != want {
				problem(fmt.Sprintf("volume %s's token has audience %q, not %q: cluster %s refuses it", v.Name, token.Audience, want, sai.Spec.ClusterName), recreate)
			}
		}
		if token.Path != v1alpha1.SecretKeyToken {
			problem(fmt.Sprintf("volume %s puts the token at %s, not %s: clients do not find it", v.Name, token.Path, v1alpha1.SecretKeyToken), recreate)
		}
	}
	if !projectsConfigMap(v.Projected, im.ConfigMap) {
		problem(fmt.Sprintf("volume %s does not project ConfigMap %s: the pod lacks the remote server, CA, identity and kubeconfig", v.Name, im.ConfigMap), recreate)
	}
	return nil
}

func webhookCreation(ctx context.Context, cl *kube.Clients) *metav1.Time {
	w, err := cl.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, manifests.WebhookConfiguration, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return &w.CreationTimestamp
}

// Print writes the report for people.
func (r *MountsReport) Print(w io.Writer, now time.Time, mark func(bool) string) {
	fmt.Fprintf(w, "Pod %s/%s\n", r.Namespace, r.Pod)
	if len(r.Imports) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "IMPORT\tREADY\tEXPIRES\tSECRET\tVOLUME\tMOUNTED IN")
		for _, im := range r.Imports {
			ready := im.Ready
			if !im.Exists {
				ready = "<missing>"
			}
			expires := "<none>"
			if im.Expires != nil {
				if left := im.Expires.Sub(now); left > 0 {
					expires = "in " + duration.HumanDuration(left)
				} else {
					expires = "expired"
				}
			}
			secret := im.Secret
			if !im.SecretPresent {
				secret += " (missing)"
			}
			if im.Mode == string(v1alpha1.ModeFederated) {
				// No secret, and the pod's own token, which the kubelet rotates.
				expires = "<pod token>"
				secret = "configmap/" + im.ConfigMap
				if !im.ConfigMapPresent {
					secret += " (missing)"
				}
			}
			volume := im.Volume
			if volume == "" {
				volume = "<none>"
			}
			var in []string
			for _, c := range im.Containers {
				name := c.Name
				if c.Init {
					name = "init:" + name
				}
				in = append(in, mark(c.Mounted)+name)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", im.Name, ready, expires, secret, volume, strings.Join(in, " "))
		}
		tw.Flush()
	}
	if len(r.Problems) == 0 {
		fmt.Fprintf(w, "%s every import is mounted in every container\n", mark(true))
		return
	}
	fmt.Fprintln(w, "Problems:")
	for _, p := range r.Problems {
		prefix := ""
		if p.Import != "" {
			prefix = p.Import + ": "
		}
		fmt.Fprintf(w, "%s %s%s\n", mark(false), prefix, p.Message)
		if p.Remedy != "" {
			fmt.Fprintf(w, "    → %s\n", p.Remedy)
		}
	}
}
