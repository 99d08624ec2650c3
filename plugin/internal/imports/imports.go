// Package imports creates, lists, waits for and rotates ServiceAccountImports for the plugin.
package imports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// Client works on the imports of one cluster.
type Client struct {
	Clients *kube.Clients
}

// ParseShort reads the short form CLUSTER/NAMESPACE/SERVICEACCOUNT and derives the import's
// name the way the original's getting-started did: cluster2-default-pod-lister.
func ParseShort(s string) (name string, spec v1alpha1.ServiceAccountImportSpec, err error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", spec, fmt.Errorf("%q is not CLUSTER/NAMESPACE/SERVICEACCOUNT", s)
	}
	spec = v1alpha1.ServiceAccountImportSpec{ClusterName: parts[0], Namespace: parts[1], Name: parts[2]}
	return strings.Join(parts, "-"), spec, nil
}

// ValidateSpec checks an import before it is sent, with the schema's rules in words.
func ValidateSpec(name string, spec v1alpha1.ServiceAccountImportSpec) error {
	var errs []string
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		errs = append(errs, fmt.Sprintf("import name %q: %s", name, strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsDNS1123Label(spec.ClusterName); len(msgs) > 0 {
		errs = append(errs, fmt.Sprintf("cluster %q: %s", spec.ClusterName, strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsDNS1123Label(spec.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Sprintf("remote namespace %q: %s", spec.Namespace, strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsDNS1123Subdomain(spec.Name); len(msgs) > 0 {
		errs = append(errs, fmt.Sprintf("service account %q: %s", spec.Name, strings.Join(msgs, "; ")))
	}
	if s := spec.ExpirationSeconds; s != nil && (*s < v1alpha1.MinExpirationSeconds || *s > v1alpha1.MaxExpirationSeconds) {
		errs = append(errs, fmt.Sprintf("token lifetime %s: must be from %s to %s", time.Duration(*s)*time.Second,
			time.Duration(v1alpha1.MinExpirationSeconds)*time.Second, time.Duration(v1alpha1.MaxExpirationSeconds)*time.Second))
	}
	if spec.Mode != "" && spec.Mode != v1alpha1.ModeToken && spec.Mode != v1alpha1.ModeFederated {
		errs = append(errs, fmt.Sprintf("mode %q: must be %s or %s", spec.Mode, v1alpha1.ModeToken, v1alpha1.ModeFederated))
	}
	if spec.Mode == v1alpha1.ModeFederated {
		if s := spec.ExpirationSeconds; s != nil && *s > v1alpha1.MaxFederatedExpirationSeconds {
			errs = append(errs, fmt.Sprintf("token lifetime %s: a federated import's pod tokens live at most %s, as the remote cluster cannot revoke them",
				time.Duration(*s)*time.Second, time.Duration(v1alpha1.MaxFederatedExpirationSeconds)*time.Second))
		}
		if len(spec.Audiences) > 0 {
			errs = append(errs, fmt.Sprintf("audiences %v: a federated import's pod tokens have the remote cluster's federation audience (%s) only",
				spec.Audiences, v1alpha1.FederatedAudience(spec.ClusterName)))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// Mode is an import's mode, Token when unset.
func Mode(spec v1alpha1.ServiceAccountImportSpec) v1alpha1.ImportMode {
	if spec.Mode == "" {
		return v1alpha1.ModeToken
	}
	return spec.Mode
}

// Get reads one import.
func (c *Client) Get(ctx context.Context, ns, name string) (*v1alpha1.ServiceAccountImport, error) {
	u, err := c.Clients.Dynamic.Resource(v1alpha1.Resource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && !kube.IsAPIMissing(err) {
		return nil, &notFoundError{err: err, msg: fmt.Sprintf("import %q not found in namespace %s of %s (list them with `kubectl mcsa get%s -n %s`)", name, ns, c.Clients.Describe(), c.Clients.ContextFlag(), ns)}
	}
	if err != nil {
		return nil, c.Clients.APIError(err)
	}
	return fromUnstructured(u)
}

// List reads the imports of a namespace ("" for all).
func (c *Client) List(ctx context.Context, ns string) ([]v1alpha1.ServiceAccountImport, error) {
	return c.ListSelected(ctx, ns, "")
}

// ListSelected reads the imports of a namespace ("" for all) that match a label selector ("" for
// all), as kubectl's -l does.
func (c *Client) ListSelected(ctx context.Context, ns, selector string) ([]v1alpha1.ServiceAccountImport, error) {
	l, err := c.Clients.Dynamic.Resource(v1alpha1.Resource).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, c.Clients.APIError(err)
	}
	out := make([]v1alpha1.ServiceAccountImport, 0, len(l.Items))
	for i := range l.Items {
		sai, err := fromUnstructured(&l.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, *sai)
	}
	return out, nil
}

// Apply creates or updates an import with server-side apply. An existing import naming
// another remote service account is an error unless overwrite: the name is already taken.
func (c *Client) Apply(ctx context.Context, ns, name string, spec v1alpha1.ServiceAccountImportSpec, overwrite bool) (*v1alpha1.ServiceAccountImport, bool, error) {
	a, err := c.ApplyDesired(ctx, ns, name, spec, overwrite)
	if err != nil {
		return nil, false, err
	}
	return a.Live, a.Action != kube.Unchanged, nil
}

// Applied is what ApplyDesired did.
type Applied struct {
	// Desired is the import as sent (or, in a client dry run, as it would be): no field the
	// server sets.
	Desired *v1alpha1.ServiceAccountImport
	// Live is the import as the server answered (or as it is, when unchanged); in a client dry
	// run, Desired.
	Live   *v1alpha1.ServiceAccountImport
	Action kube.Action
}

// ApplyDesired is Apply, with the import as sent and what happened to it; the clients' dry
// run makes it dry.
func (c *Client) ApplyDesired(ctx context.Context, ns, name string, spec v1alpha1.ServiceAccountImportSpec, overwrite bool) (*Applied, error) {
	existing, err := c.Get(ctx, ns, name)
	found := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	if found && Mode(existing.Spec) != Mode(spec) {
		return nil, fmt.Errorf("import %q already exists in namespace %s as a %s import, and an import's mode cannot change: delete it (`kubectl delete %s %s -n %s%s`) and import again",
			name, ns, Mode(existing.Spec), v1alpha1.Resource.GroupResource(), name, ns, c.Clients.ContextFlag())
	}
	if found && spec.Mode == "" {
		spec.Mode = existing.Spec.Mode // Token either way: unset is no change
	}
	if found && !overwrite && (existing.Spec.ClusterName != spec.ClusterName || existing.Spec.Namespace != spec.Namespace || existing.Spec.Name != spec.Name) {
		return nil, fmt.Errorf("import %q already exists in namespace %s and imports %s/%s/%s: choose another name, or pass --overwrite to repoint it",
			name, ns, existing.Spec.ClusterName, existing.Spec.Namespace, existing.Spec.Name)
	}
	obj := &v1alpha1.ServiceAccountImport{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceAccountImport"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       spec,
	}
	switch {
	case found && reflect.DeepEqual(existing.Spec, spec):
		return &Applied{Desired: obj, Live: existing, Action: kube.Unchanged}, nil
	case c.Clients.WritesNothing():
		a := &Applied{Desired: obj, Live: obj, Action: kube.Created}
		if found {
			a.Action = kube.Configured
		}
		return a, nil
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	u, err := c.Clients.Dynamic.Resource(v1alpha1.Resource).Namespace(ns).Patch(ctx, name, types.ApplyPatchType, data,
		metav1.PatchOptions{FieldManager: kube.FieldManager, Force: ptr.To(overwrite), DryRun: c.Clients.DryRunOpts(false)})
	if err != nil {
		return nil, c.Clients.APIError(err)
	}
	sai, err := fromUnstructured(u)
	if err != nil {
		return nil, err
	}
	a := &Applied{Desired: obj, Live: sai, Action: kube.Created}
	if found {
		a.Action = kube.Configured
	}
	return a, nil
}

// Ready is an import's Ready condition, nil when the importer has not reported on the
// current generation yet.
func Ready(sai *v1alpha1.ServiceAccountImport) *metav1.Condition {
	c := apimeta.FindStatusCondition(sai.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.ObservedGeneration < sai.Generation {
		return nil
	}
	return c
}

// WaitReady waits until the importer reports on the import: Ready, or a failure with the
// condition's message. progress is called when the reason changes.
func (c *Client) WaitReady(ctx context.Context, ns, name string, timeout time.Duration, progress func(reason, message string)) (*v1alpha1.ServiceAccountImport, error) {
	var sai *v1alpha1.ServiceAccountImport
	lastReason := ""
	settled := 0
	err := c.poll(ctx, timeout, func() (bool, error) {
		var err error
		if sai, err = c.Get(ctx, ns, name); err != nil {
			return false, err
		}
		cond := Ready(sai)
		if cond == nil {
			return false, nil
		}
		if cond.Reason != lastReason {
			lastReason = cond.Reason
			settled = 0
			progress(cond.Reason, cond.Message)
		}
		if cond.Status == metav1.ConditionTrue {
			return true, nil
		}
		// A failure that stays for a few polls is the answer, not a transient state.
		settled++
		return settled >= 4, nil
	})
	if err != nil {
		if wait.Interrupted(err) {
			return sai, fmt.Errorf("import %s/%s is not ready after %s: is the importer running? check `kubectl mcsa doctor%s`", ns, name, timeout, c.Clients.ContextFlag())
		}
		return sai, err
	}
	if cond := Ready(sai); cond.Status != metav1.ConditionTrue {
		return sai, fmt.Errorf("import %s/%s is not ready: %s: %s", ns, name, cond.Reason, cond.Message)
	}
	return sai, nil
}

// RequestRefresh asks the importer for an immediate token refresh and returns the request's
// value, which the importer copies to status.lastRefreshRequest once done.
func (c *Client) RequestRefresh(ctx context.Context, ns, name string, now time.Time) (string, error) {
	if _, err := c.Get(ctx, ns, name); err != nil {
		return "", err
	}
	value := now.UTC().Format(time.RFC3339Nano)
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{v1alpha1.RefreshRequestedAnnotation: value}}})
	_, err := c.Clients.Dynamic.Resource(v1alpha1.Resource).Namespace(ns).Patch(ctx, name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: kube.FieldManager})
	return value, c.Clients.APIError(err)
}

// WaitRefreshed waits until the importer acted on the refresh request value (it records it in
// status.lastRefreshRequest whether the refresh worked or not) and reports the outcome.
func (c *Client) WaitRefreshed(ctx context.Context, ns, name, value string, timeout time.Duration) (*v1alpha1.ServiceAccountImport, error) {
	var sai *v1alpha1.ServiceAccountImport
	err := c.poll(ctx, timeout, func() (bool, error) {
		var err error
		if sai, err = c.Get(ctx, ns, name); err != nil {
			return false, err
		}
		return sai.Status.LastRefreshRequest == value && Ready(sai) != nil, nil
	})
	if err != nil {
		if wait.Interrupted(err) {
			return sai, fmt.Errorf("the importer did not act on the refresh of %s/%s within %s: is it running? check `kubectl mcsa doctor%s`", ns, name, timeout, c.Clients.ContextFlag())
		}
		return sai, err
	}
	if cond := Ready(sai); cond.Status != metav1.ConditionTrue {
		return sai, fmt.Errorf("refresh of %s/%s failed: %s: %s", ns, name, cond.Reason, cond.Message)
	}
	return sai, nil
}

// poll calls done every half second until it is done, fails for a reason other than the
// deadline, or timeout passes (wait.Interrupted then reports it).
func (c *Client) poll(ctx context.Context, timeout time.Duration, done func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		ok, err := done()
		if err != nil && ctx.Err() != nil {
			// The deadline cut a call short: report the timeout, not the cut call.
			return false, ctx.Err()
		}
		return ok, err
	})
}

// Secret reads an import's secret.
func (c *Client) Secret(ctx context.Context, sai *v1alpha1.ServiceAccountImport) (*corev1.Secret, error) {
	name := v1alpha1.SecretName(sai.Name)
	if len(sai.Status.Secrets) > 0 && sai.Status.Secrets[0].Name != "" {
		name = sai.Status.Secrets[0].Name
	}
	s, err := c.Clients.Kube.CoreV1().Secrets(sai.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		reason := "the importer has not written it yet"
		if cond := Ready(sai); cond != nil && cond.Status != metav1.ConditionTrue {
			reason = cond.Reason + ": " + cond.Message
		}
		return nil, fmt.Errorf("import %s/%s has no secret (%s)", sai.Namespace, sai.Name, reason)
	}
	return s, c.Clients.APIError(err)
}

// notFoundError explains a missing import and still answers apierrors.IsNotFound.
type notFoundError struct {
	err error
	msg string
}

func (e *notFoundError) Error() string { return e.msg }
func (e *notFoundError) Unwrap() error { return e.err }

func fromUnstructured(u *unstructured.Unstructured) (*v1alpha1.ServiceAccountImport, error) {
	var sai v1alpha1.ServiceAccountImport
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &sai); err != nil {
		return nil, err
	}
	return &sai, nil
}
