package grant_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
)

// TestFederationOnRealControlPlanes checks the shapes of this package against real API servers:
// A serves its issuer discovery to anonymous callers with DiscoveryBinding only; B, given
// Authenticator in its authentication configuration, maps A's service account to the prefixed
// user and groups; FederatedGrant lets a granted namespace of A act as B's service account for
// the granted verbs only; FederatedCheck lets A's importer ask B about it.
func TestFederationOnRealControlPlanes(t *testing.T) {
	cs := controlplane.ForTestWith(t, controlplane.Options{AuthenticationConfig: true}, "cluster1", "cluster2")
	a, b := cs[0], cs[1]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// A: discovery forbidden to anonymous callers until the binding exists.
	discovery := a.Server + "/.well-known/openid-configuration"
	if code, _ := anonymousGet(t, a.CAData, discovery); code != http.StatusForbidden {
		t.Fatalf("anonymous discovery before the binding: %d, want 403", code)
	}
	if _, err := a.Clientset().RbacV1().ClusterRoleBindings().Create(ctx, grant.DiscoveryBinding(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		code, body := anonymousGet(t, a.CAData, discovery)
		return code == http.StatusOK && json.Unmarshal(body, &doc) == nil, nil
	}); err != nil {
		t.Fatalf("A's discovery never served anonymously: %v", err)
	}
	if doc.Issuer != a.Issuer {
		t.Fatalf("discovery issuer %q, want %q", doc.Issuer, a.Issuer)
	}
	if code, _ := anonymousGet(t, a.CAData, a.Server+"/api/v1/namespaces"); code != http.StatusForbidden {
		t.Fatalf("anonymous list of namespaces: %d, want 403: the binding must serve discovery only", code)
	}

	// B trusts A's issuer, with an entry naming A's key IDs, as federate writes it.
	cfg := &apiserverv1.AuthenticationConfiguration{TypeMeta: metav1.TypeMeta{APIVersion: apiserverv1.SchemeGroupVersion.String(), Kind: "AuthenticationConfiguration"}}
	kids := keyIDsOf(ctx, t, a)
	if len(kids) != 1 {
		t.Fatalf("A's key IDs: %v, want one", kids)
	}
	if err := grant.SetAuthenticator(cfg, grant.Authenticator("cluster1", "cluster2", grant.Issuer{URL: doc.Issuer, DiscoveryURL: discovery, CertificateAuthority: string(a.CAData), KeyIDs: kids})); err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.AuthenticationConfigFile, out, 0o600); err != nil {
		t.Fatal(err)
	}

	team := tokenOf(ctx, t, a, "team", "app", v1alpha1.FederatedAudience("cluster2"))
	var user authenticationv1.UserInfo
	began := time.Now()
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		r, err := bearer(t, b, team, "").AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			return false, nil
		}
		user = r.Status.UserInfo
		return true, nil
	}); err != nil {
		t.Fatalf("B never accepted A's token: %v\n%s", err, b.Logs("kube-apiserver"))
	}
	t.Logf("B accepted A's tokens %s after the file changed", time.Since(began).Round(100*time.Millisecond))
	if want := grant.FederatedUser("cluster1", "team", "app"); user.Username != want {
		t.Fatalf("B maps A's service account to %q, want %q", user.Username, want)
	}
	for _, g := range []string{grant.FederatedGroup("cluster1", ""), grant.FederatedGroup("cluster1", "team")} {
		if !contains(user.Groups, g) {
			t.Errorf("groups %v lack %s", user.Groups, g)
		}
	}
	// A token for B is refused by A itself.
	if _, err := bearer(t, a, team, "").AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("a token of A for B, at A: %v, want 401", err)
	}
	// A token for another audience (A's own) is refused by B.
	if _, err := bearer(t, b, tokenOf(ctx, t, a, "team", "app", a.Issuer), "").AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("a token of A for A's own audience, at B: %v, want 401", err)
	}

	// B: a reader service account, granted to namespace team of A for listing pods only.
	bcs := b.Clientset()
	mustCreate(ctx, t, func() error {
		_, err := bcs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(ctx, t, func() error {
		_, err := bcs.CoreV1().ServiceAccounts("apps").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader"}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(ctx, t, func() error {
		_, err := bcs.RbacV1().Roles("apps").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "reader"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "delete"}}}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(ctx, t, func() error {
		_, err := bcs.RbacV1().RoleBindings("apps").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reader"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "reader"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "reader", Namespace: "apps"}}}, metav1.CreateOptions{})
		return err
	})
	reader := v1alpha1.ServiceAccountUser("apps", "reader")
	asReader := bearer(t, b, team, reader)
	if _, err := asReader.CoreV1().Pods("apps").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("before the grant: %v, want Forbidden", err)
	}
	objs, err := grant.FederatedGrant{ImportingCluster: "cluster1", Namespace: "apps", ServiceAccount: "reader",
		IntoNamespaces: []string{"team"}, Verbs: []string{"list"}, Resources: []string{"pods"}}.Objects()
	if err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	for _, o := range objs {
		mustCreate(ctx, t, func() error { return create(ctx, bcs, o) })
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := asReader.CoreV1().Pods("apps").List(ctx, metav1.ListOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatalf("the grant did not take effect within 5 s: %v", err)
	}
	t.Logf("grant effective after %s", time.Since(began).Round(10*time.Millisecond))
	if _, err := asReader.CoreV1().Pods("apps").Get(ctx, "any", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("get while only list is granted: %v, want Forbidden", err)
	}
	if err := asReader.CoreV1().Pods("apps").Delete(ctx, "any", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("delete while only list is granted: %v, want Forbidden", err)
	}
	if _, err := bearer(t, b, team, v1alpha1.ServiceAccountUser("apps", "default")).CoreV1().Pods("apps").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("acting as another service account: %v, want Forbidden", err)
	}
	other := tokenOf(ctx, t, a, "other", "app", v1alpha1.FederatedAudience("cluster2"))
	if _, err := bearer(t, b, other, reader).CoreV1().Pods("apps").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a namespace of A not granted: %v, want Forbidden", err)
	}

	// A's importer checks the grant with a LocalSubjectAccessReview, which FederatedCheck allows.
	importer := tokenOf(ctx, t, a, grant.Namespace, "mcsa-controller", v1alpha1.FederatedAudience("cluster2"))
	importerUser := grant.FederatedUser("cluster1", grant.Namespace, "mcsa-controller")
	review := func(ns string) (*authorizationv1.LocalSubjectAccessReview, error) {
		return bearer(t, b, importer, "").AuthorizationV1().LocalSubjectAccessReviews("apps").Create(ctx, &authorizationv1.LocalSubjectAccessReview{
			ObjectMeta: metav1.ObjectMeta{Namespace: "apps"},
			Spec: authorizationv1.SubjectAccessReviewSpec{
				Groups: []string{grant.FederatedGroup("cluster1", ""), grant.FederatedGroup("cluster1", ns)},
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "apps", Verb: grant.ImpersonateServiceAccountVerb,
					Group: grant.ImpersonationGroup, Resource: "serviceaccounts", Name: "reader"},
			},
		}, metav1.CreateOptions{})
	}
	if _, err := review("team"); !apierrors.IsForbidden(err) {
		t.Fatalf("the importer's review without FederatedCheck: %v, want Forbidden", err)
	}
	r, rb := grant.FederatedCheck("cluster1", "apps", importerUser)
	mustCreate(ctx, t, func() error { return create(ctx, bcs, r) })
	mustCreate(ctx, t, func() error { return create(ctx, bcs, rb) })
	for ns, want := range map[string]bool{"team": true, "other": false} {
		var got *authorizationv1.LocalSubjectAccessReview
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
			got, err = review(ns)
			return err == nil, nil
		}); err != nil {
			t.Fatalf("review for %s: %v", ns, err)
		}
		if got.Status.Allowed != want {
			t.Errorf("may namespace %s of A act as %s? B says %v, want %v (%s)", ns, reader, got.Status.Allowed, want, got.Status.Reason)
		}
	}

	// Revocation: the grant deleted, the next call is refused.
	list := func(ctx context.Context) error {
		_, err := asReader.CoreV1().Pods("apps").List(ctx, metav1.ListOptions{})
		return err
	}
	if err := list(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("constrained grant revoked: calls refused after %s", revoke(ctx, t, bcs, objs, list).Round(10*time.Millisecond))
	legacy, err := grant.FederatedGrant{ImportingCluster: "cluster1", Namespace: "apps", ServiceAccount: "reader",
		IntoNamespaces: []string{"team"}, Unconstrained: true}.Objects()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range legacy {
		mustCreate(ctx, t, func() error { return create(ctx, bcs, o) })
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		return list(ctx) == nil, nil
	}); err != nil {
		t.Fatalf("legacy grant: %v", err)
	}
	t.Logf("legacy grant revoked: calls refused after %s", revoke(ctx, t, bcs, legacy, list).Round(10*time.Millisecond))
}

// revoke deletes the grant's objects and returns how long until asReader's list is refused.
func revoke(ctx context.Context, t *testing.T, bcs kubernetes.Interface, objs []any, list func(context.Context) error) time.Duration {
	t.Helper()
	began := time.Now()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *rbacv1.Role:
			err = bcs.RbacV1().Roles(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{})
		case *rbacv1.RoleBinding:
			err = bcs.RbacV1().RoleBindings(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{})
		case *rbacv1.ClusterRole:
			err = bcs.RbacV1().ClusterRoles().Delete(ctx, o.Name, metav1.DeleteOptions{})
		case *rbacv1.ClusterRoleBinding:
			err = bcs.RbacV1().ClusterRoleBindings().Delete(ctx, o.Name, metav1.DeleteOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		return apierrors.IsForbidden(list(ctx)), nil
	}); err != nil {
		t.Fatalf("still allowed 90 s after the grant was deleted: %v", err)
	}
	return time.Since(began)
}

func anonymousGet(t *testing.T, ca []byte, url string) (int, []byte) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body []byte
	buf := make([]byte, 64<<10)
	n, _ := resp.Body.Read(buf)
	body = buf[:n]
	return resp.StatusCode, body
}

// tokenOf mints a token of service account ns/name of c (both created if needed).
func tokenOf(ctx context.Context, t *testing.T, c *controlplane.Cluster, ns, name, audience string) string {
	t.Helper()
	cs := c.Clientset()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: []string{audience}, ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

func bearer(t *testing.T, c *controlplane.Cluster, token, as string) kubernetes.Interface {
	t.Helper()
	cfg := &rest.Config{Host: c.Server, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData}, Impersonate: rest.ImpersonationConfig{UserName: as}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func create(ctx context.Context, cs kubernetes.Interface, o any) error {
	var err error
	switch o := o.(type) {
	case *rbacv1.Role:
		_, err = cs.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.RoleBinding:
		_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.ClusterRole:
		_, err = cs.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.ClusterRoleBinding:
		_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
	default:
		panic(o)
	}
	return err
}

func mustCreate(_ context.Context, t *testing.T, f func() error) {
	t.Helper()
	if err := f(); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
