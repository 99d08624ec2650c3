package config

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
)

// TestRotationOnRealAPIServer builds a client once from a mounted import and keeps listing pods
// with it while the token is rotated three times the way the kubelet swaps secret files, each
// old token being revoked right after its swap. The request after each swap must carry the new
// token, and not one call may fail.
//
// Each token is bound (TokenRequest's boundObjectRef) to a Secret of its own, so deleting that
// Secret revokes that token alone.
func TestRotationOnRealAPIServer(t *testing.T) {
	c := controlplane.ForTest(t, "cluster1")[0]
	e := newTestEnv(t)
	ctx := t.Context()
	admin := c.Clientset()
	const ns, sa = "default", "pod-lister"
	create := metav1.CreateOptions{FieldManager: "mcsa-config-test"}

	// A service account that may only list pods in its namespace, and a pod to list.
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, create))
	must(admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: sa},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}},
	}, create))
	must(admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: sa},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}, create))
	must(admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx"}}},
	}, create))

	mint := func(i int) string {
		t.Helper()
		secret, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-token-%d", sa, i)}}, create)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To[int64](3600),
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: secret.Name, UID: secret.UID},
		}}, create)
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	tokens := []string{mint(0)}
	dir := filepath.Join(e.root, "cluster1-default-pod-lister")
	files := importFiles(c.CAData, c.Server, ns, tokens[0])
	writeAtomic(t, dir, files)

	// The client under test, built once.
	cfg, gotNS, err := ServiceAccountImportConfigAndNamespace()
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 50, 50 // client-go's default 5 QPS would make the loop sparse
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if gotNS != ns {
		t.Fatalf("namespace %q, want %q", gotNS, ns)
	}
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Name != "nginx" {
		t.Fatalf("listing pods: %v %v", pods, err)
	}
	// Least privilege: nothing beyond listing pods in its namespace.
	if _, err := client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing pods in kube-system: %v, want Forbidden", err)
	}
	if _, err := client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing secrets: %v, want Forbidden", err)
	}

	// Calls in a loop for the whole rotation.
	var ok, failed atomic.Int64
	var errsMu sync.Mutex
	var errs []error
	loopCtx, stopLoop := context.WithCancel(ctx)
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		for loopCtx.Err() == nil {
			_, err := client.CoreV1().Pods(ns).List(loopCtx, metav1.ListOptions{})
			switch {
			case loopCtx.Err() != nil: // stopping, not a failure
			case err != nil:
				failed.Add(1)
				errsMu.Lock()
				errs = append(errs, err)
				errsMu.Unlock()
			default:
				ok.Add(1)
			}
		}
	}()
	defer func() { stopLoop(); <-loopDone }()

	poll := func(what string, interval time.Duration, cond func() bool) {
		t.Helper()
		start := time.Now()
		err := wait.PollUntilContextTimeout(ctx, interval, 90*time.Second, false, func(context.Context) (bool, error) {
			return cond(), nil
		})
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
	}
	moreCalls := func(n int64) {
		t.Helper()
		target := ok.Load() + n
		poll(fmt.Sprintf("%d more successful calls", n), 50*time.Millisecond, func() bool { return ok.Load() >= target || failed.Load() > 0 })
	}
	refused := func(token string) func() bool {
		probe, err := kubernetes.NewForConfig(&rest.Config{Host: c.Server, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData}})
		if err != nil {
			t.Fatal(err)
		}
		return func() bool {
			_, err := probe.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			return apierrors.IsUnauthorized(err)
		}
	}

	// The token the client sends, as the API server sees it: its JTI.
	whoami := func() string {
		t.Helper()
		review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, create)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(review.Status.UserInfo.Extra["authentication.kubernetes.io/credential-id"], ",")
	}

	moreCalls(10)
	for i := 1; i <= 3; i++ {
		tokens = append(tokens, mint(i))
		files["token"] = []byte(tokens[i])
		writeAtomic(t, dir, files)
		// Revoke the previous token right away: the docs say that is safe.
		if err := admin.CoreV1().Secrets(ns).Delete(ctx, fmt.Sprintf("%s-token-%d", sa, i-1), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// The very next request carries the new token.
		if got, want := whoami(), "JTI="+jti(t, tokens[i]); got != want {
			t.Fatalf("after swap %d the client sent the token with credential id %q, want %q", i, got, want)
		}
		moreCalls(10)
	}
	// The API server caches successful token reviews for 10 s: wait until every old token is
	// actually refused, with the loop running.
	for i := range 3 {
		poll(fmt.Sprintf("token %d refused", i), 250*time.Millisecond, refused(tokens[i]))
	}
	moreCalls(10)
	stopLoop()
	<-loopDone

	t.Logf("%d successful calls, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d calls failed across rotations, e.g. %v", failed.Load(), errs[0])
	}
}

// jti is the ID of a service account token (a JWT), unverified.
func jti(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.JTI == "" {
		t.Fatalf("token has no jti: %v", err)
	}
	return claims.JTI
}

// TestFederatedImportOnRealAPIServer mounts two federated imports of the same service account:
// their tokens are service accounts of the API server's own (standing in for the pods' tokens
// that B trusts; what makes B trust them is incluster/grant's business), allowed by RBAC to
// impersonate the service account named in `as`, and nothing else: one as B's grants do by
// default (constrained impersonation), one with the legacy `impersonate` verb. Clients built
// once act as that service account, copies of their configurations too, and keep doing so
// after the tokens are swapped and the old ones revoked.
func TestFederatedImportOnRealAPIServer(t *testing.T) {
	c := controlplane.ForTest(t, "cluster1")[0]
	e := newTestEnv(t)
	ctx := t.Context()
	admin := c.Clientset()
	const ns, sa = "default", "pod-lister"
	as := "system:serviceaccount:" + ns + ":" + sa
	create := metav1.CreateOptions{FieldManager: "mcsa-config-test"}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	bind := func(name string, cluster bool, rules []rbacv1.PolicyRule, subject string) {
		t.Helper()
		subjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: subject}}
		if cluster {
			must(admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, create))
			must(admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
				Subjects:   subjects,
			}, create))
			return
		}
		must(admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, create))
		must(admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   subjects,
		}, create))
	}
	must(admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, create))
	bind(sa, false, []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}}, sa)
	must(admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx"}}},
	}, create))

	// The pods' identities (import names too) and what they may do.
	pods := map[string]func(name string){
		"constrained": func(name string) {
			bind(name, false, []rbacv1.PolicyRule{{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"serviceaccounts"},
				Verbs: []string{"impersonate:serviceaccount"}, ResourceNames: []string{sa}}}, name)
			bind(name, true, []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"},
				Verbs: []string{"impersonate-on:serviceaccount:list", "impersonate-on:serviceaccount:create"}}}, name)
		},
		"legacy": func(name string) {
			bind(name, false, []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"serviceaccounts"},
				Verbs: []string{"impersonate"}, ResourceNames: []string{sa}}}, name)
		},
	}
	// Tokens of a pod's identity, each bound to a Secret of its own so it can be revoked.
	mint := func(pod string, i int) string {
		t.Helper()
		secret, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-token-%d", pod, i)}}, create)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, pod, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To[int64](3600),
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: secret.Name, UID: secret.UID},
		}}, create)
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	oldTokens := map[string]string{}
	for pod, grant := range pods {
		must(admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: pod}}, create))
		grant(pod)
		oldTokens[pod] = mint(pod, 0)
		writeAtomic(t, filepath.Join(e.root, pod), federatedFiles(c.CAData, c.Server, ns, oldTokens[pod], as+"\n"))
	}

	all, err := AllServiceAccountImportConfigsAndNamespaces()
	if err != nil {
		t.Fatal(err)
	}
	clientFor := func(cfg *rest.Config) *kubernetes.Clientset {
		t.Helper()
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	type clients struct{ client, copy, noImpersonation *kubernetes.Clientset }
	byPod := map[string]clients{}
	for pod := range pods {
		cfg := all[pod].Config
		if all[pod].Namespace != ns {
			t.Fatalf("%s: namespace %q, want %q", pod, all[pod].Namespace, ns)
		}
		noImpersonation := rest.CopyConfig(cfg)
		noImpersonation.Impersonate = rest.ImpersonationConfig{}
		byPod[pod] = clients{clientFor(cfg), clientFor(rest.CopyConfig(cfg)), clientFor(noImpersonation)}
	}

	check := func(when string) {
		t.Helper()
		for pod, cl := range byPod {
			for name, cs := range map[string]*kubernetes.Clientset{"client": cl.client, "copy": cl.copy} {
				review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, create)
				if err != nil {
					t.Fatalf("%s, %s %s: %v", when, pod, name, err)
				}
				if got := review.Status.UserInfo.Username; got != as {
					t.Errorf("%s, %s %s: acting as %q, want %q", when, pod, name, got, as)
				}
				list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				if err != nil || len(list.Items) != 1 {
					t.Fatalf("%s, %s %s: listing pods: %v", when, pod, name, err)
				}
				// The impersonated service account's rights, no more.
				if _, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
					t.Errorf("%s, %s %s: listing secrets: %v, want Forbidden", when, pod, name, err)
				}
			}
			// The pod's token alone may impersonate, not list pods.
			if _, err := cl.noImpersonation.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
				t.Errorf("%s, %s: listing pods without impersonating: %v, want Forbidden", when, pod, err)
			}
		}
	}
	check("before the swap")

	// The kubelet swaps the pods' tokens; the old ones are revoked at once.
	for pod := range pods {
		writeAtomic(t, filepath.Join(e.root, pod), federatedFiles(c.CAData, c.Server, ns, mint(pod, 1), as+"\n"))
		if err := admin.CoreV1().Secrets(ns).Delete(ctx, pod+"-token-0", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	check("right after the swap")
	// The API server caches successful token reviews for 10 s: once the old tokens are
	// refused, success means the new ones are sent.
	start := time.Now()
	for pod, old := range oldTokens {
		probe := clientFor(&rest.Config{Host: c.Server, BearerToken: old, TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData}})
		err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 90*time.Second, false, func(context.Context) (bool, error) {
			_, err := probe.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, create)
			return apierrors.IsUnauthorized(err), nil
		})
		if err != nil {
			t.Fatalf("waiting for %s's old token to be refused: %v", pod, err)
		}
	}
	t.Logf("old tokens refused after %v", time.Since(start).Round(time.Millisecond))
	check("once the old tokens are refused")
}
