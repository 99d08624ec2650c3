package allow

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// Anchors (grant.Anchor): every token A's importer mints in B is bound to the anchor of its
// (importing cluster, service account) pair. allow creates them, disallow deletes them (so the
// tokens issued under the grant stop working within the API server's 10 s token cache), revoke
// replaces them (a new UID: every outstanding token dies, the next refresh binds to the new one).

// anchorsOf lists importingCluster's anchors, in namespace ("" for all), by service account
// name and namespace.
func anchorsOf(ctx context.Context, source *kube.Clients, importingCluster, namespace string) ([]corev1.Secret, error) {
	list, err := source.Kube.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: grant.Selector(importingCluster).String()})
	if err != nil {
		return nil, source.APIError(err)
	}
	var out []corev1.Secret
	for _, s := range list.Items {
		if grant.AnchorServiceAccount(&s, importingCluster) != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// granted tells whether importingCluster may still import namespace/serviceAccount by any grant
// (named, namespace-wide, cluster-wide), as far as the operator may read grants.
func granted(ctx context.Context, source *kube.Clients, importingCluster, namespace, serviceAccount string) (bool, error) {
	role, err := source.Kube.RbacV1().Roles(namespace).Get(ctx, grant.ImportName(importingCluster), metav1.GetOptions{})
	switch {
	case err == nil && slices.Contains(grant.ImportedServiceAccounts(role), serviceAccount):
		return true, nil
	case err != nil && !apierrors.IsNotFound(err):
		return false, source.APIError(err)
	}
	for _, get := range []func() error{
		func() error {
			_, err := source.Kube.RbacV1().RoleBindings(namespace).Get(ctx, grant.NamespaceImportName(importingCluster), metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := source.Kube.RbacV1().ClusterRoleBindings().Get(ctx, grant.ClusterImportName(importingCluster), metav1.GetOptions{})
			return err
		},
	} {
		err := get()
		if err == nil {
			return true, nil
		}
		if !apierrors.IsNotFound(err) {
			return false, source.APIError(err)
		}
	}
	return false, nil
}

// deleteAnchors deletes importingCluster's anchors in namespace ("" for every namespace but the
// importers'), except those of service accounts still granted otherwise.
func deleteAnchors(ctx context.Context, source *kube.Clients, importingCluster, namespace string, del func(*corev1.Secret) error) error {
	anchors, err := anchorsOf(ctx, source, importingCluster, namespace)
	if err != nil {
		return err
	}
	for i := range anchors {
		a := &anchors[i]
		if a.Namespace == grant.Namespace {
			continue // the cluster credential's: bootstrap's, not a grant's
		}
		still, err := granted(ctx, source, importingCluster, a.Namespace, grant.AnchorServiceAccount(a, importingCluster))
		if err != nil {
			return err
		}
		if !still {
			if err := del(grant.Anchor(importingCluster, a.Namespace, grant.AnchorServiceAccount(a, importingCluster))); err != nil {
				return err
			}
		}
	}
	return nil
}

// anchorTerminationTimeout bounds how long revoke waits for a deleted anchor to be gone (only a
// finalizer someone added would keep it).
var anchorTerminationTimeout = 30 * time.Second

// Revoke replaces the anchors of importingCluster's tokens of the named service accounts: every
// token issued so far stops working within the API server's 10 s token cache; the importer's
// next refresh gets tokens bound to the new anchor. Service accounts not granted are refused.
func Revoke(ctx context.Context, source *kube.Clients, importingCluster string, refs []ServiceAccountRef, u *ui.UI) ([]kube.Result, error) {
	for _, ref := range refs {
		if ref.Namespace == grant.Namespace {
			return nil, fmt.Errorf("%s is an importer identity, not a grant: to cut an importing cluster off, delete its identity (`kubectl -n %s delete serviceaccount %s%s`)",
				ref, grant.Namespace, ref.Name, source.ContextFlag())
		}
		ok, err := granted(ctx, source, importingCluster, ref.Namespace, ref.Name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%s may not import %s from %s: nothing to revoke (grant it with `kubectl mcsa allow %s %s%s`)",
				importingCluster, ref, source.Describe(), importingCluster, ref, source.ContextFlag())
		}
	}
	var results []kube.Result
	for _, ref := range refs {
		anchor := grant.Anchor(importingCluster, ref.Namespace, ref.Name)
		secrets := source.Kube.CoreV1().Secrets(ref.Namespace)
		old, err := secrets.Get(ctx, anchor.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			old = nil
			u.Warn("%s had no anchor in %s: tokens issued before it existed are not bound to one and stay valid until they expire", ref, source.Describe())
		case err != nil:
			return results, source.APIError(err)
		default:
			err := secrets.Delete(ctx, anchor.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &old.UID}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return results, fmt.Errorf("deleting anchor %s/%s in %s: %w", ref.Namespace, anchor.Name, source.Describe(), source.APIError(err))
			}
			results = append(results, result(anchor, kube.Deleted))
		}
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, anchorTerminationTimeout, true, func(ctx context.Context) (bool, error) {
			_, err := secrets.Create(ctx, anchor, metav1.CreateOptions{FieldManager: kube.FieldManager})
			switch {
			case err == nil:
				return true, nil
			case apierrors.IsAlreadyExists(err):
				current, err := secrets.Get(ctx, anchor.Name, metav1.GetOptions{})
				if err == nil && current.DeletionTimestamp == nil && (old == nil || current.UID != old.UID) {
					return true, nil // replaced meanwhile by someone else: a new anchor all the same
				}
				return false, nil // still terminating
			}
			return false, source.APIError(err)
		}); err != nil {
			return results, fmt.Errorf("creating anchor %s/%s in %s: %w (a finalizer on the old one?)", ref.Namespace, anchor.Name, source.Describe(), err)
		}
		results = append(results, result(anchor, kube.Created))
	}
	return results, nil
}

func result(s *corev1.Secret, action kube.Action) kube.Result {
	u, _ := kube.ToUnstructured(s)
	return kube.Result{Object: u, Action: action}
}
