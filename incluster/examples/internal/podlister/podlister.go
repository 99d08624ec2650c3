// Package podlister prepares the example clients' end-to-end tests, as the original getting
// started guide did by hand: in a real cluster, a `pod-lister` service account that may only
// list pods in its namespace, pods to list, and that service account's credentials mounted the
// way the automount webhook mounts an import's secret.
package podlister

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
)

// ServiceAccount is the service account the examples import.
const ServiceAccount = "pod-lister"

var create = metav1.CreateOptions{FieldManager: "mcsa-examples-test"}

// Create makes namespace (unless it exists), pods of the given names in it, and the
// `pod-lister` service account allowed to list pods there. With allowed false, the service
// account gets no role, for tests of what must be denied.
func Create(t testing.TB, c *controlplane.Cluster, namespace string, allowed bool, pods ...string) {
	t.Helper()
	ctx := context.Background()
	cs := c.Clientset()
	check := func(_ any, err error) {
		t.Helper()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	check(cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, create))
	check(cs.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: ServiceAccount}}, create))
	if allowed {
		check(cs.RbacV1().Roles(namespace).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: ServiceAccount},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}},
		}, create))
		check(cs.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: ServiceAccount},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: ServiceAccount},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: ServiceAccount}},
		}, create))
	}
	// Pods need the namespace's default service account, which the controller manager creates.
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("namespace %s has no default service account: %v", namespace, err)
	}
	for _, name := range pods {
		check(cs.CoreV1().Pods(namespace).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx"}}},
		}, create))
	}
}

// Mount writes the secret of an import of namespace's `pod-lister` into root/importName, with
// a fresh token.
func Mount(t testing.TB, c *controlplane.Cluster, namespace, root, importName string) {
	t.Helper()
	tr, err := c.Clientset().CoreV1().ServiceAccounts(namespace).CreateToken(context.Background(), ServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, create)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, importName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for key, value := range map[string][]byte{
		v1alpha1.SecretKeyToken:     []byte(tr.Status.Token),
		v1alpha1.SecretKeyCACert:    c.CAData,
		v1alpha1.SecretKeyNamespace: []byte(namespace),
		v1alpha1.SecretKeyServer:    []byte(c.Server),
	} {
		if err := os.WriteFile(filepath.Join(dir, key), value, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
