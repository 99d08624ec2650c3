package install

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// Result is one object and what happened to it.
type Result = kube.Result

// Installer applies and removes the rendered manifests in one cluster.
type Installer struct {
	Clients *kube.Clients
	UI      *ui.UI
	// DryRun sends every write with dryRun=All: the server validates and nothing is stored.
	DryRun bool
}

// MinServerVersion is the oldest Kubernetes the installation works on. The automount webhook's
// registration relies on matchConditions (CEL), on by default since 1.28: an older API server
// drops the field and sends every pod creation of the cluster to the webhook, which would then
// stand in the way of all pods.
const MinServerVersion = "v1.28.0"

// CheckServerVersion refuses an API server older than MinServerVersion.
func (in *Installer) CheckServerVersion() error {
	info, err := in.Clients.Kube.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("reading the Kubernetes version of %s: %w", in.Clients.Describe(), err)
	}
	v, err := version.ParseGeneric(info.GitVersion)
	if err != nil {
		return fmt.Errorf("reading the Kubernetes version of %s (%q): %w", in.Clients.Describe(), info.GitVersion, err)
	}
	if v.LessThan(version.MustParseGeneric(MinServerVersion)) {
		return fmt.Errorf("%s runs Kubernetes %s; kubectl-mcsa needs %s or later (its webhook relies on matchConditions, which older API servers ignore, so every pod creation would reach it): upgrade the cluster first",
			in.Clients.Describe(), info.GitVersion, MinServerVersion)
	}
	return nil
}

// Apply server-side applies objs in order, after CheckServerVersion. CRDs are waited for as
// they come, so that objects of their kinds map.
func (in *Installer) Apply(ctx context.Context, objs []*unstructured.Unstructured) ([]Result, error) {
	if err := in.CheckServerVersion(); err != nil {
		return nil, err
	}
	var results []Result
	for _, obj := range objs {
		res, err := in.Clients.Apply(ctx, obj, in.DryRun)
		if err != nil && in.DryRun && obj.GetNamespace() != "" && apierrors.IsNotFound(err) {
			// The API server does not store what a dry run creates, so the namespace is missing.
			return results, fmt.Errorf("%w: a server dry run needs namespace %s to exist already; `kubectl mcsa render` prints the manifests without a server", err, obj.GetNamespace())
		}
		if err != nil {
			return results, err
		}
		results = append(results, res)
		if obj.GetKind() == "CustomResourceDefinition" && !in.DryRun {
			if err := in.waitEstablished(ctx, obj.GetName()); err != nil {
				return results, err
			}
		}
	}
	return results, nil
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func (in *Installer) waitEstablished(ctx context.Context, name string) error {
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		crd, err := in.Clients.Dynamic.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("CRD %s not established: %w", name, err)
	}
	return nil
}

// Wait waits until the controller's Deployment is available and the webhook's CA is
// injected, reporting progress.
func (in *Installer) Wait(ctx context.Context, objs []*unstructured.Unstructured, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, obj := range objs {
		switch obj.GetKind() {
		case "Deployment":
			in.UI.Step("waiting for deployment %s/%s to be available…", obj.GetNamespace(), obj.GetName())
			if err := in.waitDeployment(ctx, obj.GetNamespace(), obj.GetName()); err != nil {
				return err
			}
			in.UI.Done("deployment %s/%s available", obj.GetNamespace(), obj.GetName())
		case "MutatingWebhookConfiguration":
			in.UI.Step("waiting for the webhook's CA to be injected into %s…", obj.GetName())
			if err := in.waitCABundle(ctx, obj.GetName()); err != nil {
				return err
			}
			in.UI.Done("webhook %s has its CA", obj.GetName())
		}
	}
	return nil
}

func (in *Installer) waitDeployment(ctx context.Context, ns, name string) error {
	var last string
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		d, err := in.Clients.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("%d/%d replicas available", d.Status.AvailableReplicas, ptrValue(d.Spec.Replicas))
		return d.Status.ObservedGeneration >= d.Generation && deploymentAvailable(d), nil
	})
	if err != nil {
		return fmt.Errorf("deployment %s/%s not available (%s): check `kubectl%s -n %s describe deployment %s` and its pods' logs", ns, name, last, in.Clients.ContextFlag(), ns, name)
	}
	return nil
}

func deploymentAvailable(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == "True" {
			return d.Status.UpdatedReplicas == ptrValue(d.Spec.Replicas)
		}
	}
	return false
}

func ptrValue(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

func (in *Installer) waitCABundle(ctx context.Context, name string) error {
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		w, err := in.Clients.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, wh := range w.Webhooks {
			if len(wh.ClientConfig.CABundle) == 0 {
				return false, nil
			}
		}
		return len(w.Webhooks) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("webhook configuration %s has no CA bundle yet: the controller injects it; check its logs with `kubectl%s -n %s logs deploy/%s`", name, in.Clients.ContextFlag(), manifests.Namespace, manifests.ControllerDeployment)
	}
	return nil
}

// Uninstall deletes objs in reverse order. CRDs and namespaces are kept unless deleteImports:
// deleting the CRD deletes every import (and, by owner references, their secrets), and the
// namespace holds the cluster credentials.
func (in *Installer) Uninstall(ctx context.Context, objs []*unstructured.Unstructured, deleteImports bool) ([]Result, error) {
	var results []Result
	for i := len(objs) - 1; i >= 0; i-- {
		obj := objs[i]
		if kind := obj.GetKind(); !deleteImports && (kind == "CustomResourceDefinition" || kind == "Namespace") {
			results = append(results, Result{Object: obj, Action: kube.Kept})
			continue
		}
		res, err := in.Clients.Delete(ctx, obj, in.DryRun)
		if err != nil {
			return results, err
		}
		results = append(results, res)
	}
	return results, nil
}

// CountImports counts the imports in every namespace, for uninstall's summary; -1 when the
// API is not there.
func (in *Installer) CountImports(ctx context.Context) int {
	l, err := in.Clients.Dynamic.Resource(v1alpha1.Resource).List(ctx, metav1.ListOptions{})
	if err != nil {
		return -1
	}
	return len(l.Items)
}
