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

// ImportMount is one import a pod asks for, and what it got.
type ImportMount struct {
	Name          string           `json:"name"`
	Exists        bool             `json:"exists"`
	Ready         string           `json:"ready,omitempty"`
	Reason        string           `json:"reason,omitempty"`
	Expires       *time.Time       `json:"expires,omitempty"`
	Secret        string           `json:"secret"`
	SecretPresent bool             `json:"secretPresent"`
	Volume        string           `json:"volume,omitempty"`
	Path          string           `json:"path"`
	Containers    []ContainerMount `json:"containers"`
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
		im := ImportMount{Name: name, Secret: v1alpha1.SecretName(name), Path: v1alpha1.MountPath(name)}
		problem := func(msg, remedy string) {
			r.Problems = append(r.Problems, Problem{Import: name, Message: msg, Remedy: remedy})
		}
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
			if t := sai.Status.ExpirationTimestamp; t != nil {
				exp := t.Time
				im.Expires = &exp
				if exp.Before(now) {
					problem(fmt.Sprintf("token expired %s ago", duration.HumanDuration(now.Sub(exp))),
						fmt.Sprintf("kubectl mcsa rotate %s -n %s%s --wait", name, namespace, cl.ContextFlag()))
				}
			}
		case apierrors.IsNotFound(err):
			problem("import not found in namespace "+namespace,
				fmt.Sprintf("kubectl mcsa import %s --cluster CLUSTER --remote-namespace NAMESPACE --service-account NAME -n %s%s", name, namespace, cl.ContextFlag()))
		default:
			return nil, err
		}
		if _, err := cl.Kube.CoreV1().Secrets(namespace).Get(ctx, im.Secret, metav1.GetOptions{}); err == nil {
			im.SecretPresent = true
		} else if apierrors.IsNotFound(err) {
			if im.Exists {
				problem("secret "+im.Secret+" not written yet: the kubelet waits for it and the pod cannot start", fmt.Sprintf("see why with `kubectl mcsa get %s -n %s -o wide%s`", name, namespace, cl.ContextFlag()))
			}
		} else {
			return nil, cl.APIError(err)
		}
		for _, v := range pod.Spec.Volumes {
			if v.Secret != nil && v.Secret.SecretName == im.Secret {
				im.Volume = v.Name
			}
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
