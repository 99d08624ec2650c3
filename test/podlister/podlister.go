// Package podlister prepares the example clients' end-to-end tests, as the original getting
// started guide did by hand: in a real cluster, a `pod-lister` service account that may only
// list pods in its namespace, pods to list, and that service account's credentials mounted the
// way the automount webhook mounts an import's secret. It is test code (it takes a testing.TB),
// so it lives here with the harness rather than beside the examples in the product tree.
package podlister

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
)

// ServiceAccount is the service account the examples import.
const ServiceAccount = "pod-lister"

// Create makes namespace (unless it exists), pods of the given names in it, and the
// `pod-lister` service account allowed to list pods there. With allowed false, the service
// account gets no role, for tests of what must be denied.
func Create(t testing.TB, c *fixture.Cluster, namespace string, allowed bool, pods ...string) {
	t.Helper()
	ctx := context.Background()
	// Pods need the namespace's default service account, which Namespaces waits for.
	if err := c.Namespaces(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	objs := []client.Object{&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: ServiceAccount}}}
	if allowed {
		objs = append(objs,
			&rbacv1.Role{
				ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: ServiceAccount},
				Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}},
			},
			&rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: ServiceAccount},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: ServiceAccount},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: ServiceAccount}},
			})
	}
	for _, name := range pods {
		objs = append(objs, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx"}}},
		})
	}
	for _, o := range objs {
		if err := c.CreateIfMissing(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
}

// Mount writes the secret of an import of namespace's `pod-lister` into root/importName, with
// a fresh token.
func Mount(t testing.TB, c *fixture.Cluster, namespace, root, importName string) {
	t.Helper()
	tr, err := c.Clientset().CoreV1().ServiceAccounts(namespace).CreateToken(context.Background(), ServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
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
